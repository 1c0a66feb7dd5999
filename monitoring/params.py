"""Query parameters shared by the monitoring pages and API."""

from django.core.exceptions import BadRequest

MODEL_NAME_MAX_LENGTH = 255  # as registered names are stored


def model_name_param(raw: str | None, *, default: str | None) -> str | None:
    """The model a page or API call is about: the given name, else `default`.

    A name no model can have (NUL character, too long) is a 400, not a database error.
    """
    name = (raw or "").strip()
    if not name:
        return default
    if "\x00" in name or len(name) > MODEL_NAME_MAX_LENGTH:
        raise BadRequest(f"model name: not a valid name ({len(name)} characters)")
    return name
