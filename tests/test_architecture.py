"""The layers (docs/architecture.md) are an import-linter contract: it holds for our
tree, and it fails when an import goes the wrong way."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mlapp", "core", "jobs", "models_registry", "predictions", "monitoring", "retraining")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """Run the contract in pyproject.toml on the packages under `tree`, and only those."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [LINT_IMPORTS, "--no-logo", "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def test_our_tree_keeps_the_layers():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import"),
    [
        ("models_registry", "monitoring.models"),  # the registry knows no app above it
        ("models_registry", "predictions.models"),
        ("predictions", "monitoring.services"),  # scoring never reaches into monitoring
        ("core", "models_registry.models"),  # the shared helpers know no app
        ("jobs", "predictions.models"),  # the job lifecycle knows no job table above it
        ("monitoring", "mlapp.settings"),  # apps read django.conf.settings, not the project package
    ],
)
def test_a_wrong_way_import_breaks_the_contract(tmp_path, module, wrong_import):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / module / "wrong_way.py").write_text(f"import {wrong_import}\n")

    result = _lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and "0 kept, 1 broken" in result.stdout
    assert f"{module}.wrong_way -> {wrong_import}" in result.stdout
