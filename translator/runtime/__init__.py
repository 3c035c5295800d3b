"""Running on Celery: the app and its step task, dispatching what a decision says, the sweeper,
workers, limits, embedded runs.
"""
