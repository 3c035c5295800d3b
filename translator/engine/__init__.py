"""From a definition to decisions: the plan tree, the decider, Celery signatures, scripts, retry
delays, deadlines.
"""
