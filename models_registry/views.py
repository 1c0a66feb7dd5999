from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from core.permissions import staff_required

from . import mlflow_access, selectors, services
from .comparison import version_comparison, versions_with_other_schema
from .forms import AliasMoveForm, ModelImportForm, PromoteForm, TrainingForm
from .importing import ModelImportError, model_import
from .models import TrainingJob
from .profile import categories_by_share
from .reports import version_training_report
from .training import SchemaChangeNotConfirmed, TrainingInputError, training_data_prepare, training_schema_check


@login_required
def model_list(request):
    return render(
        request,
        "models_registry/model_list.html",
        {
            "nav": "models",
            "models": selectors.registered_model_list(),
            "served": {d.name: d.version for d in selectors.deployment_list()},
        },
    )


@login_required
def model_detail(request, name):
    rows = selectors.model_version_rows(name)
    if not rows:
        raise Http404(f"No registered model named {name!r}")
    records = [row.record for row in rows if row.record is not None]
    production = next((row.record for row in rows if mlflow_access.PRODUCTION in row.aliases), None)
    return render(
        request,
        "models_registry/model_detail.html",
        {
            "nav": "models",
            "name": name,
            "rows": rows,
            "history": selectors.alias_history(name=name),
            "production_periods": selectors.production_periods(name=name),
            "other_schema": versions_with_other_schema(records, production),
            "alias_form": AliasMoveForm(),
            "mlflow_model_url": mlflow_access.model_url(name),
        },
    )


@login_required
def version_detail(request, name, version):
    record = selectors.model_version_get(name=name, version=version)
    if record is None:
        raise Http404(f"{name} has no version {version} recorded by mlapp")
    return render(
        request,
        "models_registry/version_detail.html",
        {
            "nav": "models",
            "mv": record,
            "features": [
                {**f, "categories": dict(categories_by_share(f))} for f in record.training_profile.data["features"]
            ],
            "aliases": [a for a, v in selectors.model_aliases(name).items() if v == version],
            "run_url": mlflow_access.run_url(record.run_id),
            "mlflow_version_url": mlflow_access.model_url(name, version),
            "report": version_training_report(record),
            "snapshot": selectors.training_snapshot_get(record),
            "evaluation": selectors.challenger_evaluation_latest(name=name, version=version),
        },
    )


@staff_required
@require_http_methods(["GET", "POST"])
def version_promote(request, name, version):
    """The candidate beside production (schema, metrics, features, data, size), and the promotion form."""
    comparison = version_comparison(name=name, version=version)
    if comparison is None:
        raise Http404(f"{name} has no version {version}")
    form = PromoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.model_version_promote(
                name=name,
                version=version,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                confirm_schema_change=form.cleaned_data["confirm_schema_change"],
            )
        except services.IncompatiblePromotion:
            form.add_error("confirm_schema_change", "Not promoted: confirm the differences listed above to promote it.")
        except services.PromotionError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{name} version {version} is now in production.")
            return redirect("models_registry:detail", name=name)
    return render(
        request,
        "models_registry/version_promote.html",
        {
            "nav": "models",
            "name": name,
            "comparison": comparison,
            "form": form,
            "evaluation": selectors.challenger_evaluation_latest(name=name, version=version),
        },
    )


@staff_required
@require_POST
def model_rollback(request, name):
    form = AliasMoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A reason is required to roll back.")
        return redirect("models_registry:detail", name=name)
    try:
        change = services.model_version_rollback(name=name, actor=request.user, reason=form.cleaned_data["reason"])
    except services.PromotionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Rolled {name} back from version {change.from_version} to {change.to_version}.")
    return redirect("models_registry:detail", name=name)


@staff_required
def training_new(request):
    form = TrainingForm(request.POST or None, request.FILES or None)
    schema_changes = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["csv_file"]
        try:
            # Check the CSV (and what it changes against production) now, so a refused file
            # is refused on the page and nothing is queued.
            data = training_data_prepare(
                csv=upload.file,
                target=form.cleaned_data["target"],
                task=form.cleaned_data["task"] or None,
                source_name=upload.name,
            )
            training_schema_check(
                name=form.cleaned_data["model_name"],
                data=data,
                allow_schema_change=form.cleaned_data["allow_schema_change"],
            )
        except SchemaChangeNotConfirmed as exc:
            schema_changes = exc.differences
        except TrainingInputError as exc:
            form.add_error(None, str(exc))
        else:
            upload.seek(0)
            job = services.training_job_create(
                upload=upload,
                target=form.cleaned_data["target"],
                task=form.cleaned_data["task"],
                model_name=form.cleaned_data["model_name"],
                actor=request.user,
                allow_schema_change=form.cleaned_data["allow_schema_change"],
            )
            return redirect("models_registry:training_job", pk=job.pk)
    return render(
        request,
        "models_registry/training_new.html",
        {
            "nav": "models",
            "form": form,
            "model_names": selectors.registered_model_names(),
            "schema_changes": schema_changes,
        },
    )


@staff_required
def training_job(request, pk):
    job = get_object_or_404(TrainingJob, pk=pk)
    report = version_training_report(job.model_version) if job.model_version else None
    return render(request, "models_registry/training_job.html", {"nav": "models", "job": job, "report": report})


@staff_required
def training_job_status(request, pk):
    job = get_object_or_404(TrainingJob, pk=pk)
    version = job.model_version
    return JsonResponse(
        {
            "status": job.status,
            "progress": job.progress,
            "stage": job.stage,
            "error": job.error,
            "done": job.status in (TrainingJob.Status.SUCCEEDED, TrainingJob.Status.FAILED),
            "reused_existing": job.reused_existing,
            "version_url": (
                reverse("models_registry:version", args=[version.name, version.version]) if version else None
            ),
            "version": version.version if version is not None else None,
            "report": version_training_report(version)["data"] if version is not None else [],
            "selection": (version_training_report(version)["selection"].get("reason", "") if version else ""),
        }
    )


@staff_required
def model_register(request):
    """Bring your own model: register an existing MLflow model with a reference CSV (synchronous: the
    checks, the profile and the smoke test take seconds, not a training's minutes)."""
    form = ModelImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = model_import(
                source=data["source"],
                reference_csv=data["reference_csv"].file,
                reference_name=data["reference_csv"].name,
                name=data["model_name"],
                target=data["target"],
                task=data["task"] or None,
                actor=request.user,
                allow_schema_change=data["allow_schema_change"],
            )
            mv = result.model_version
            if data["promote"]:
                services.model_version_promote(
                    name=mv.name,
                    version=mv.version,
                    actor=request.user,
                    reason=f"registered from {data['source']}",
                    confirm_schema_change=data["allow_schema_change"],
                )
        except (ModelImportError, services.PromotionError) as exc:
            form.add_error(None, str(exc))
        else:
            verb = "was already registered as" if result.reused_existing else "is registered as"
            messages.success(request, f"{data['source']} {verb} {mv.name} version {mv.version}.")
            return redirect("models_registry:version", name=mv.name, version=mv.version)
    return render(
        request,
        "models_registry/model_register.html",
        {"nav": "models", "form": form, "model_names": selectors.registered_model_names()},
    )
