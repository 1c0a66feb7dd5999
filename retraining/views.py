from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.permissions import staff_required
from models_registry import selectors

from .forms import RetrainPolicyForm
from .models import RetrainJob
from .services import policies, runs


@login_required
@require_http_methods(["GET", "POST"])
def model_retraining(request, name):
    """The model's retrain policy (staff edit it here or in the admin) and its retraining passes."""
    policy = policies.retrain_policy_get(model_name=name)
    form = RetrainPolicyForm(request.POST or None, instance=policy)
    if request.method == "POST":
        if not request.user.is_staff:
            messages.error(request, "Only staff change a retrain policy.")
            return redirect("retraining:model", name=name)
        if form.is_valid():
            try:
                policies.retrain_policy_save(form.save(commit=False))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Retrain policy of {name} saved.")
                return redirect("retraining:model", name=name)
    return render(
        request,
        "retraining/model.html",
        {
            "nav": "models",
            "name": name,
            "form": form,
            "saved": policy.pk is not None,
            "jobs": runs.retrain_jobs_of(model_name=name),
            "production": selectors.production_version_get(name),
        },
    )


@staff_required
@require_POST
def retrain_now(request, name):
    try:
        job = runs.retrain_job_request(model_name=name, trigger=RetrainJob.Trigger.MANUAL, actor=request.user)
    except runs.RetrainError as exc:
        messages.error(request, str(exc))
        return redirect("retraining:model", name=name)
    if job is None:
        messages.info(request, "A retraining pass is already queued or running.")
        return redirect("retraining:model", name=name)
    return redirect("retraining:job", name=name, pk=job.pk)


@login_required
def retrain_job(request, name, pk):
    job = get_object_or_404(RetrainJob.objects.select_related("model_version", "evaluation"), pk=pk, model_name=name)
    return render(request, "retraining/job.html", {"nav": "models", "name": name, "job": job})
