"""The Celery app of the translator worker pool: ``celery -A tasks worker``.

Configuration comes from ``celeryconfig.py`` (environment variables). The workers of the image
pipeline (``tasks.image``, ``tasks.s3``) are registered here; workers defined in other modules are
loaded with ``TRANSLATOR_WORKER_MODULES=pkg.module`` or ``celery -A tasks worker -I pkg.module``.
"""

from celery import Celery

from tasks import image, s3
from tasks.magick import name_installed_library
from translator.runtime.celery_app import install

name_installed_library()  # before a step loads Wand (lazily): its own library search is slow
app = Celery("translator")
app.config_from_object("celeryconfig")
# Context managers entered around an embedded run (translator run with no broker).
app.conf.translator_embedded_services = ["tasks.local_s3:local_s3"]
install(app)

__all__ = ["app", "image", "s3"]
