"""A project's own Celery app that knows nothing of the demo app (``tasks``): what
``TRANSLATOR_CELERY_APP=tests.custom_celery_app`` and ``celery -A tests.custom_celery_app worker`` load."""

from celery import Celery

from tests import runtime_workers
from translator.runtime.celery_app import install

app = Celery("custom")  # the broker comes from CELERY_BROKER_URL, as for any Celery app
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    event_serializer="json",
    task_acks_late=True,
    worker_prefetch_multiplier=1,
)
install(app)

__all__ = ["app", "runtime_workers"]
