"""Conductor's REST API over the worker pool (``translator serve``)."""

from translator.api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
