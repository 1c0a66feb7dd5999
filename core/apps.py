from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Shared helpers"

    def ready(self):
        from .authentication import token_cache_signals_connect  # noqa: PLC0415 (models are ready only now)

        token_cache_signals_connect()
