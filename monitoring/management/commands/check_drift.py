from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from monitoring.services import drift, rollups


def _moment(value: str):
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"{value!r} is not an ISO date-time (e.g. 2026-05-01T12:00:00Z)")
    if moment.tzinfo is None:
        raise CommandError(f"{value!r} has no time zone: add Z or +00:00")
    return moment


class Command(BaseCommand):
    help = (
        "Refresh the dashboards' prediction rollups, then store a drift report of a model "
        "(what its scheduled job does) and print its verdict."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="registered model name")
        parser.add_argument("--last-n", type=int, help="check the newest N served rows")
        parser.add_argument("--since", type=_moment, help="window start, ISO date-time with time zone")
        parser.add_argument("--until", type=_moment, help="window end (exclusive)")
        parser.add_argument("--source", help="only rows from this source (web, api, batch, scheduled)")
        parser.add_argument("--no-alert", action="store_true", help="store the report without raising an alert")
        parser.add_argument("--no-rollups", action="store_true", help="skip the rollup refresh")
        parser.add_argument(
            "--scheduled",
            action="store_true",
            help="run the model's scheduled check (rows since the previous one; it becomes the drift status and "
            "may trigger retraining); without it the check is hand-run and kept out of the status",
        )

    def handle(self, *args, **options):
        if not options["no_rollups"]:
            result = rollups.prediction_rollups_refresh()
            self.stdout.write(f"rollups: {result.rows_written} hourly rows written since {result.since or 'start'}")
        try:
            report = drift.drift_report_create(
                model_name=options["model"],
                since=options["since"],
                until=options["until"],
                last_n=options["last_n"],
                source=options["source"],
                raise_alert=not options["no_alert"],
                scheduled=options["scheduled"],
            )
        except drift.DriftCheckError as exc:
            raise CommandError(str(exc)) from exc
        verdict = "DATASET DRIFT" if report.dataset_drift else "no dataset drift"
        self.stdout.write(
            f"drift report #{report.pk} for {report.model_name} v{report.model_version} on {report.n_rows} rows: "
            f"{verdict} ({report.n_drifted}/{report.n_features} features drifted"
            f"{', predictions drifted' if report.prediction_drift else ''})"
        )
        for row in report.features.order_by("-drifted", "feature"):
            self.stdout.write(
                f"  {row.feature:<24} {row.verdict:<9} {row.test:<5} stat={_fmt(row.statistic)} "
                f"p={_fmt(row.p_value)} {row.effect_name}={_fmt(row.effect_size)} psi={_fmt(row.psi)}"
            )


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4g}"
