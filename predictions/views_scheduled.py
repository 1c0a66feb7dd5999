from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors


@login_required
def scheduled_runs(request, model_name: str):
    return render(
        request,
        "predictions/scheduled_runs.html",
        {
            "nav": "predictions",
            "model_name": model_name,
            "runs": selectors.scheduled_run_list(model_name=model_name)[:100],
            "waiting": selectors.good_files_waiting(model_name=model_name)[:50],
        },
    )
