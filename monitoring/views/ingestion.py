"""Pages: ingested files and runs, one file's issues and quarantined rows, alerts."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.permissions import staff_required
from core.task_queue import TaskQueueUnavailable, task_send
from models_registry.selectors import deployment_list

from ..models import Alert, IngestedFile
from ..params import model_name_param
from ..selectors import ingestion as selectors
from ..services.alerts import alert_acknowledge as alert_acknowledge_service
from ..services.ingestion import data_folder_paths
from ..tasks import ingest_raw_files_task

PAGE_SIZE = 50


def _scheduled_runs_url(model_name: str) -> str | None:
    try:
        return reverse("predictions:scheduled_runs", args=[model_name])
    except NoReverseMatch:  # the predictions app has not wired that page
        return None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
def ingestion_overview(request, model_name: str):
    status = request.GET.get("status") or None
    if status not in IngestedFile.Status.values:
        status = None
    run_id = _int_or_none(request.GET.get("run"))
    files = selectors.ingested_file_list(model_name=model_name, status=status, run_id=run_id)
    page = Paginator(files, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "monitoring/ingestion/overview.html",
        {
            "nav": "ingestion",
            "model_name": model_name,
            "raw_folder": data_folder_paths(model_name)["raw"],
            "page": page,
            "status": status or "",
            "run_id": run_id,
            "statuses": IngestedFile.Status.choices,
            "runs": selectors.ingestion_run_list(model_name=model_name, limit=15),
            "totals": selectors.ingestion_totals(model_name=model_name),
            "quarantine": selectors.quarantine_usage(model_name=model_name),
            "quarantine_alert_bytes": int(settings.MLAPP_QUARANTINE_ALERT_MB * (1 << 20)) or float("inf"),
            "alert_counts": selectors.alert_counts(model_name=model_name),
            "scheduled_runs_url": _scheduled_runs_url(model_name),
        },
    )


@login_required
def ingested_file_detail(request, pk):
    ingested_file = selectors.ingested_file_get(pk=pk)
    if ingested_file is None:
        raise Http404(f"No ingested file #{pk}")
    return render(
        request,
        "monitoring/ingestion/file_detail.html",
        {
            "nav": "ingestion",
            "model_name": ingested_file.model_name,
            "file": ingested_file,
            "issues": selectors.ingested_file_issues(ingested_file=ingested_file),
            "preview": selectors.quarantine_preview(ingested_file=ingested_file),
            "alerts": ingested_file.alerts.order_by("-created_at"),
            "scheduled_runs_url": _scheduled_runs_url(ingested_file.model_name),
        },
    )


@login_required
def alert_list(request):
    state = request.GET.get("state", "open")
    if state not in selectors.ALERT_STATES:
        state = "open"
    kind = request.GET.get("kind") or None
    if kind not in Alert.Kind.values:
        kind = None
    model = model_name_param(request.GET.get("model"), default=None)
    alerts = selectors.alert_list(state=state, kind=kind, model_name=model)
    page = Paginator(alerts, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "monitoring/ingestion/alert_list.html",
        {
            "nav": "alerts",
            "page": page,
            "state": state,
            "kind": kind or "",
            "model": model or "",
            "model_name": model,
            "models": [d.name for d in deployment_list()],
            "states": selectors.ALERT_STATES,
            "kinds": Alert.Kind.choices,
            "counts": selectors.alert_counts(model_name=model),
        },
    )


@staff_required
@require_POST
def alert_acknowledge(request, pk):
    if selectors.alert_get(pk=pk) is None:
        raise Http404(f"No alert #{pk}")
    alert = alert_acknowledge_service(alert_id=pk, user=request.user)
    messages.success(request, f"Acknowledged: {alert.title}")
    target = request.POST.get("next")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("monitoring:alerts")


@staff_required
@require_POST
def ingestion_run_now(request, model_name: str):
    try:
        task_send(ingest_raw_files_task, model_name)
    except TaskQueueUnavailable as exc:
        messages.error(request, f"{exc}. Run `scripts/manage ingest --model {model_name}` on the server instead.")
    else:
        messages.success(request, "An ingestion run was queued; new files appear here when it finishes.")
    return redirect("monitoring:ingestion", model_name=model_name)
