"""The challenger comparison page: a model's traffic policy (staff edit it here) and what its
challenger answered beside production, in shadow or A/B (`predictions.experiments`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render

from predictions.experiments import experiment_summary
from predictions.forms import TrafficPolicyEditForm
from predictions.routing import TrafficPolicyError, traffic_policy_changes, traffic_policy_set

from .. import charts


def _section_chart(section, *, task, challenger_name):
    if not section.production_outputs and not section.challenger_outputs:
        return None
    return charts.variant_distributions(
        section.production_outputs, section.challenger_outputs, task=task, challenger_name=challenger_name
    )


@login_required
def challenger(request, model_name: str):
    form = None
    if request.method == "POST":
        if not request.user.is_staff:
            raise PermissionDenied("Only staff change a model's traffic policy")
        form = TrafficPolicyEditForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                traffic_policy_set(
                    model_name=model_name,
                    mode=data["mode"],
                    challenger_percent=data["challenger_percent"],
                    auto_promote=data["auto_promote"],
                    actor=request.user,
                    reason=data["reason"],
                )
            except TrafficPolicyError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Traffic policy of {model_name}: {data['mode']}")
                return redirect("monitoring:challenger", model_name=model_name)
    summary = experiment_summary(model_name=model_name)
    if form is None:
        form = TrafficPolicyEditForm(
            initial={
                "mode": summary.mode,
                "challenger_percent": summary.challenger_percent,
                "auto_promote": summary.auto_promote,
            }
        )
    return render(
        request,
        "monitoring/dashboards/challenger.html",
        {
            "nav": "model_overview",
            "tab": "challenger",
            "model_name": model_name,
            "summary": summary,
            "form": form,
            "changes": traffic_policy_changes(model_name=model_name, limit=20),
            "shadow_chart": _section_chart(summary.shadow, task=summary.task, challenger_name="shadow"),
            "ab_chart": _section_chart(summary.ab, task=summary.task, challenger_name="challenger"),
        },
    )
