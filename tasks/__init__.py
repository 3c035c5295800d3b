"""The Celery app of the translator worker pool: ``celery -A tasks worker``.

Configuration comes from ``celeryconfig.py`` (environment variables). Worker functions defined in
other modules are loaded with ``TRANSLATOR_WORKER_MODULES=pkg.module`` or ``celery -A tasks worker
-I pkg.module``.
"""

from celery import Celery

from translator.celery_app import install

app = Celery("translator")
app.config_from_object("celeryconfig")
install(app)

__all__ = ["app"]
