from django.core.management.base import BaseCommand, CommandError

from retraining.models import RetrainJob
from retraining.services.runs import RetrainError, retrain_job_request, retrain_job_run


class Command(BaseCommand):
    help = (
        "Run one retraining pass of a model here and now (what its schedule and drift trigger queue): "
        "train on its data plus new labelled rows, compare the challenger with production, apply the policy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="registered model name")

    def handle(self, *args, **options):
        try:
            job = retrain_job_request(model_name=options["model"], trigger=RetrainJob.Trigger.MANUAL, enqueue=False)
        except RetrainError as exc:
            raise CommandError(str(exc)) from exc
        if job is None:
            raise CommandError(f"A retraining pass of {options['model']} is already queued or running")
        job = retrain_job_run(job_id=job.pk)
        if job.status == RetrainJob.Status.FAILED:
            raise CommandError(f"retrain #{job.pk} failed: {job.error}")
        self.stdout.write(f"retrain #{job.pk} of {job.model_name}: {job.get_outcome_display()}")
        self.stdout.write(f"  rows by source: {job.rows_by_source}")
        self.stdout.write(f"  {job.outcome_text}")
