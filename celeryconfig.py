"""Celery configuration of the translator worker pool (``celery -A tasks worker``).

Every value comes from the environment, with the defaults documented in docs/configuration.md.
Reasons for each choice: docs/architecture.md ("Celery settings").
"""

from translator.settings import DEFAULT_BROKER_URL, Settings

_settings = Settings.from_env()

broker_url = _settings.broker_url or DEFAULT_BROKER_URL
result_backend = _settings.result_backend

# JSON only: no pickle anywhere (a reachable broker must not mean code execution).
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
event_serializer = "json"

# A step is acknowledged after it ran, and requeued if its worker process dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Flower needs task events; "sent" events show queued tasks too.
worker_send_task_events = True
task_send_sent_event = True

task_default_queue = _settings.default_queue
# HTTP system tasks have their own queue, so that slow endpoints do not hold the slots of other tasks:
# a worker consumes it beside the default queue unless started with -Q (docs/system-tasks.md).
translator_http_queue = _settings.http_queue
# Steps of task definitions with isolationGroupId / executionNameSpace go to Conductor's queue name
# (<task>@<namespace>-<isolationGroup>); with TRANSLATOR_QUEUE_PER_TASK=1 every task does (<task>).
translator_queue_per_task = _settings.queue_per_task
# Seconds between a step's soft time limit (timeoutSeconds) and the hard one that kills it.
translator_hard_timeout_grace = _settings.hard_timeout_grace

# Redis redelivers unacknowledged messages after the visibility timeout: it must exceed the longest
# countdown plus the longest task run time. Delays (retry delays, startDelay) longer than
# translator_park_after wait in the state store instead, and the sweeper sends them when due.
translator_park_after = _settings.park_after
translator_sweep_interval = _settings.sweep_interval
# Messages of a worker that died unacknowledged come back once older than the visibility timeout;
# every worker looks for them each TRANSLATOR_RESTORE_INTERVAL seconds.
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout,
    "unacked_restore_interval": _settings.restore_interval,
    "unacked_restore_throttle": 1,
}
result_backend_transport_options = {"visibility_timeout": _settings.visibility_timeout}
visibility_timeout = _settings.visibility_timeout
broker_connection_retry_on_startup = True

# Workers defined outside the tasks package: TRANSLATOR_WORKER_MODULES=pkg.mod,other.mod
imports = _settings.worker_modules

translator_state_url = _settings.state_url
translator_state_prefix = _settings.state_prefix
translator_state_ttl = _settings.state_ttl
