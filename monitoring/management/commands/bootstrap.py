from django.core.management.base import BaseCommand

from models_registry.demo_data import DATASETS
from monitoring.services.bootstrap import platform_bootstrap


class Command(BaseCommand):
    help = "First-run set-up: data folders, admin account, demo model (trained, registered, promoted), schedules."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", choices=DATASETS, default="churn", help="Demo dataset to train on")
        parser.add_argument("--no-demo-model", action="store_true", help="Skip the demo model")

    def handle(self, *args, **options):
        for line in platform_bootstrap(dataset=options["dataset"], with_demo_model=not options["no_demo_model"]):
            self.stdout.write(line)
