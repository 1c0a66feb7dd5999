from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The one job lifecycle every app's jobs share (claim, heartbeat, reclaim, fail, succeed).

    An app of its own at the bottom of the layers: training (models_registry),
    batch and scheduled scoring (predictions) and ingestion (monitoring) all use
    it, and none of them may import another app's code for it. No tables of its own.
    """

    name = "jobs"
    verbose_name = "Jobs"
