"""Server-rendered pages: predict form, batch scoring, past predictions."""

from __future__ import annotations

import csv
import json
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from models_registry.rules import RulePath
from models_registry.selectors import deployment_get
from models_registry.serving import ModelUnavailable

from . import selectors, services
from .forms import BatchUploadForm, PredictForm, PredictionFilterForm
from .models import BatchJob, Source
from .services.batch import batch_job_create
from .validation import InputValidationError

PAGE_ROWS = 50


def _unavailable(request, model_name: str, exc: ModelUnavailable):
    """The model's page when it cannot serve: 404 if it has no production version, 503 if it cannot load."""
    context = {"nav": "predict", "model_name": model_name, "unavailable": str(exc)}
    return render(request, "predictions/predict.html", context, status=exc.status_code)


@login_required
def predict(request, model_name: str):
    try:
        served = services.served_model_get(model_name)
    except ModelUnavailable as exc:
        return _unavailable(request, model_name, exc)
    form = PredictForm(
        request.POST if request.method == "POST" else None, specs=served.specs, table=served.rule_table()
    )
    result = None
    if request.method == "POST" and form.is_valid():
        try:
            result = services.predictions_make(
                model_name=model_name,
                records=[form.record()],
                source=Source.WEB,
                served=served,
                path=RulePath.FORM,
                actor=request.user,
            )
        except InputValidationError as exc:
            for error in exc.field_errors:
                form.add_error(error.field if error.field in form.fields else None, error.problem)
    return render(
        request,
        "predictions/predict.html",
        {
            "nav": "predict",
            "model_name": model_name,
            "served": served,
            "form": form,
            "result": result,
            "row": result.predictions[0] if result else None,
            "batch_form": BatchUploadForm(),
            "recent_jobs": BatchJob.objects.filter(created_by=request.user, model_name=model_name)[:5],
        },
    )


@login_required
def batch_upload(request, model_name: str):
    if deployment_get(model_name) is None:
        raise Http404(f"{model_name} has no production version to score with")
    form = BatchUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = batch_job_create(model_name=model_name, upload=form.cleaned_data["csv_file"], actor=request.user)
        return redirect("predictions:batch_job", pk=job.pk)
    for error in form.errors.get("csv_file", []):
        messages.error(request, f"Batch upload: {error}")
    return redirect("predictions:predict", model_name=model_name)


def _own_job(request, pk) -> BatchJob:
    job = get_object_or_404(BatchJob, pk=pk)
    if job.created_by_id != request.user.pk and not request.user.is_staff:
        raise Http404("No such batch job")
    return job


@login_required
def batch_job(request, pk):
    job = _own_job(request, pk)
    return render(request, "predictions/batch_job.html", {"nav": "predict", "model_name": job.model_name, "job": job})


@login_required
def batch_job_status(request, pk):
    job = _own_job(request, pk)
    percent = round(100 * job.rows_done / job.rows_total) if job.rows_total else (100 if job.finished_at else 0)
    return JsonResponse(
        {
            "status": job.status,
            "rows_done": job.rows_done,
            "rows_total": job.rows_total,
            "percent": percent,
            "model_name": job.model_name,
            "model_version": job.model_version,
            "error": job.error,
            "summary": job.summary,
            "done": job.status in (BatchJob.Status.SUCCEEDED, BatchJob.Status.FAILED),
        }
    )


@login_required
def batch_job_download(request, pk):
    job = _own_job(request, pk)
    if job.status != BatchJob.Status.SUCCEEDED:
        raise Http404("The scored file is not ready")
    return FileResponse(open(job.output_path, "rb"), as_attachment=True, filename=f"scored-{job.original_filename}")


def _filters(request, model_name: str) -> tuple[PredictionFilterForm, dict]:
    """The page's filters; the model is the URL's, never a filter that could be left out."""
    form = PredictionFilterForm(request.GET or None)
    filters = {"model_name": model_name, "visible_to": request.user}
    if form.is_bound and form.is_valid():
        filters.update({k: v for k, v in form.cleaned_data.items() if v not in (None, "")})
    return form, filters


def _cursor(value: str | None) -> tuple[datetime, int] | None:
    """Keyset cursor "<created_at iso>|<id>": pages without OFFSET or COUNT(*)."""
    if not value or "|" not in value:
        return None
    stamp, _, pk = value.rpartition("|")
    moment = parse_datetime(stamp)
    return (moment, int(pk)) if moment and pk.isdigit() else None


def _cursor_of(prediction) -> str:
    return f"{prediction.created_at.isoformat()}|{prediction.pk}"


def _top_class(probabilities: dict | None) -> tuple[str, float] | None:
    return max(probabilities.items(), key=lambda item: item[1]) if probabilities else None


@login_required
def prediction_list(request, model_name: str):
    """Newest first, PAGE_ROWS a page; keyset links "older" (before=) and "newer" (after=)."""
    form, filters = _filters(request, model_name)
    queryset = selectors.prediction_list(**filters)
    before = _cursor(request.GET.get("before"))
    after = None if before else _cursor(request.GET.get("after"))
    if after:
        moment, pk = after
        newer = queryset.filter(created_at__gte=moment).exclude(created_at=moment, id__lte=pk)
        rows = list(newer.order_by("created_at", "id")[: PAGE_ROWS + 1])
        has_newer = len(rows) > PAGE_ROWS
        rows = rows[:PAGE_ROWS][::-1]
        has_older = True
    else:
        if before:
            moment, pk = before
            queryset = queryset.filter(created_at__lte=moment).exclude(created_at=moment, id__gte=pk)
        rows = list(queryset[: PAGE_ROWS + 1])
        has_older = len(rows) > PAGE_ROWS
        rows = rows[:PAGE_ROWS]
        has_newer = before is not None
    for row in rows:
        row.top_class = _top_class(row.probabilities)
    base = request.GET.copy()
    base.pop("before", None)
    base.pop("after", None)
    older_query = newer_query = None
    if has_older and rows:
        query = base.copy()
        query["before"] = _cursor_of(rows[-1])
        older_query = query.urlencode()
    if has_newer and rows:
        query = base.copy()
        query["after"] = _cursor_of(rows[0])
        newer_query = query.urlencode()
    return render(
        request,
        "predictions/prediction_list.html",
        {
            "nav": "predictions",
            "model_name": model_name,
            "form": form,
            "rows": rows,
            "older_query": older_query,
            "newer_query": newer_query,
            "first_page": not (before or after) or not has_newer,
            "export_query": base.urlencode(),
        },
    )


class _Echo:
    def write(self, value):
        return value


EXPORT_COLUMNS = [
    "id",
    "created_at",
    "source",
    "model_name",
    "model_version",
    "variant",
    "run_id",
    "request_id",
    "prediction",
    "probabilities",
    "latency_ms",
    "actual",
    "features",
]


@login_required
def prediction_export(request, model_name: str):
    """The filtered predictions of the model as CSV, streamed in chunks (any number of rows)."""
    _, filters = _filters(request, model_name)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(EXPORT_COLUMNS)
        for p in selectors.prediction_list(**filters).iterator(chunk_size=2000):
            actual = p.actual_label if p.actual_label is not None else p.actual_value
            yield writer.writerow(
                [
                    p.pk,
                    p.created_at.isoformat(),
                    p.source,
                    p.model_name,
                    p.model_version,
                    p.variant,
                    p.run_id,
                    p.request_id,
                    p.output,
                    json.dumps(p.probabilities) if p.probabilities else "",
                    p.latency_ms,
                    "" if actual is None else actual,
                    json.dumps(p.features),
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="predictions-{slugify(model_name)}.csv"'
    return response
