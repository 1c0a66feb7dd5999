"""gunicorn hooks (`--config mlapp/gunicorn_conf.py`): each web worker loads every model's served
version before it takes its first request (so `/health/ready` is true once it answers), then keeps
them current."""


def post_worker_init(worker):
    from models_registry.deployments import preload, watch_start  # noqa: PLC0415 (read before Django starts)

    preload()
    watch_start()
