from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors


@login_required
def scheduled_runs(request):
    return render(
        request,
        "predictions/scheduled_runs.html",
        {
            "nav": "predictions",
            "runs": selectors.scheduled_run_list()[:100],
            "waiting": selectors.good_files_waiting()[:50],
        },
    )
