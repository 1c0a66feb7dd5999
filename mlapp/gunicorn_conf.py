"""gunicorn hooks (`--config mlapp/gunicorn_conf.py`): each web worker keeps every model's served
version current and loaded from the moment it starts, not from its first request."""


def post_worker_init(worker):
    from models_registry.deployments import watch_start

    watch_start()
