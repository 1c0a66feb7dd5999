from django.core.management.base import BaseCommand, CommandError

from models_registry.trust import model_hashes_record


class Command(BaseCommand):
    help = (
        "Record the artifact hashes of model versions mlapp registered before it recorded them "
        "(versions without a hash are refused at load). Check their files first: they are trusted as they are now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="Only this model (default: every model)")
        parser.add_argument("--model-version", type=int, help="Only this version (with --model)")

    def handle(self, *args, **options):
        if options["model_version"] is not None and not options["model"]:
            raise CommandError("--model-version needs --model")
        lines = model_hashes_record(name=options["model"], version=options["model_version"])
        for line in lines:
            self.stdout.write(line)
        if not lines:
            self.stdout.write("Every version mlapp registered has its hashes recorded: nothing to do.")
        if any(": not recorded:" in line for line in lines):
            raise CommandError("Some versions were not recorded (see above): they will not be served.")
