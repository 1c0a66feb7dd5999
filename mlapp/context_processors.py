from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject

from models_registry.selectors import deployment_list


def _model_nav(request) -> dict:
    """The model the page is about (from its URL), and the same page for every other served model.

    Evaluated only when a template reads it (pages without the nav make no query).
    """
    names = [d.name for d in deployment_list()]
    match = getattr(request, "resolver_match", None)
    # Pages of one model name it `model_name`; the registry's own pages (models_registry) `name`.
    key = None
    if match is not None:
        key = "model_name" if "model_name" in match.kwargs else "name" if match.namespace == "models_registry" else None
    current = match.kwargs.get(key) if key else None
    here = match.view_name if current else None
    target = current or (names[0] if names else None)

    def same_page(name: str) -> str:
        if here:
            try:
                return reverse(here, kwargs={key: name})
            except NoReverseMatch:  # a page that needs more than the model (a report, a feature)
                pass
        return reverse("monitoring:model_overview", kwargs={"model_name": name})

    return {
        "current": current,
        "target": target,  # where the per-model links in the nav go
        "others": [(name, same_page(name)) for name in names],
        "served": current in names if current else None,
    }


def platform(request):
    return {
        "MLFLOW_UI_URL": settings.MLFLOW_UI_URL,
        "model_nav": SimpleLazyObject(lambda: _model_nav(request)),
    }
