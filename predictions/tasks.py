"""Celery tasks of the predictions app: thin wrappers around services."""
