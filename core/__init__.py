"""Helpers that several apps use, at the bottom of the layers.

`core` imports none of our apps (nor `mlapp`); `models_registry`, `predictions` and
`monitoring` may all import it (the import-linter contract in pyproject.toml). Only
code that more than one app needs and that is about no app's domain lives here:
sending work to the task queue (`task_queue`), the REST API's parsing and error
shape (`api_parsers`, `api_errors`), staff-only access (`permissions`) and atomic
file writes (`files`).
"""
