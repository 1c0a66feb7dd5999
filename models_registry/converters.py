"""URL converters."""

from django.urls import register_converter


class ModelNameConverter:
    """A registered model's name in a URL: no slash, no NUL character (PostgreSQL
    cannot compare text holding one), at most 255 characters; anything else is a 404."""

    regex = r"[^/\x00]{1,255}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ModelNameConverter, "model_name")
