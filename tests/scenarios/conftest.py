"""The long scenarios (docs/reliability.md): collected only when MLAPP_SCENARIOS=1, so `.ci/run`
runs every other test and none of these; each has one command in docs/reliability.md."""

import os

if os.environ.get("MLAPP_SCENARIOS") != "1":
    collect_ignore_glob = ["test_*.py"]
