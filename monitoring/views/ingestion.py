"""Pages: ingested files and runs, one file's issues and quarantined rows, alerts."""

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

from ..models import Alert, IngestedFile
from ..selectors import ingestion as selectors
from ..services.alerts import alert_acknowledge as alert_acknowledge_service
from ..tasks import ingest_raw_files_task

PAGE_SIZE = 50


def _scheduled_runs_url() -> str | None:
    try:
        return reverse("predictions:scheduled_runs")
    except NoReverseMatch:  # the predictions app has not wired that page
        return None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
def ingestion_overview(request):
    status = request.GET.get("status") or None
    if status not in IngestedFile.Status.values:
        status = None
    run_id = _int_or_none(request.GET.get("run"))
    page = Paginator(selectors.ingested_file_list(status=status, run_id=run_id), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "monitoring/ingestion/overview.html",
        {
            "nav": "ingestion",
            "page": page,
            "status": status or "",
            "run_id": run_id,
            "statuses": IngestedFile.Status.choices,
            "runs": selectors.ingestion_run_list(limit=15),
            "totals": selectors.ingestion_totals(),
            "alert_counts": selectors.alert_counts(),
            "scheduled_runs_url": _scheduled_runs_url(),
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
            "file": ingested_file,
            "issues": selectors.ingested_file_issues(ingested_file=ingested_file),
            "preview": selectors.quarantine_preview(ingested_file=ingested_file),
            "alerts": ingested_file.alerts.order_by("-created_at"),
            "scheduled_runs_url": _scheduled_runs_url(),
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
    page = Paginator(selectors.alert_list(state=state, kind=kind), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "monitoring/ingestion/alert_list.html",
        {
            "nav": "alerts",
            "page": page,
            "state": state,
            "kind": kind or "",
            "states": selectors.ALERT_STATES,
            "kinds": Alert.Kind.choices,
            "counts": selectors.alert_counts(),
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
def ingestion_run_now(request):
    try:
        task_send(ingest_raw_files_task)
    except TaskQueueUnavailable as exc:
        messages.error(request, f"{exc}. Run `scripts/manage ingest` on the server instead.")
    else:
        messages.success(request, "An ingestion run was queued; new files appear here when it finishes.")
    return redirect("monitoring:ingestion")
