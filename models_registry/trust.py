"""Which model files may be loaded, and loading them without running their code.

A model version is loaded only if mlapp registered it (training) or imported it
(`register_model`), recorded then the SHA-256 of every file of its model directory
(`ModelVersion.artifact_manifest`, with one combined `artifact_sha256`), and its files
still hash to that now. Every load goes through `trusted_pipeline_load`: the
files are copied to a private temporary directory, the copy is hashed and compared
with the record, and the very bytes that were checked are what gets loaded, so a
file swapped between the check and the load is never read.

Only scikit-learn models saved by MLflow in the **skops** format are loaded, with
skops' own loader and the explicit trusted-type list (`mlflow_access.SKOPS_TRUSTED_TYPES`);
the types a file names are checked before anything is built from it. A pickle or
cloudpickle model, a custom Python model, or any other flavor is refused with the
reason: loading them unpickles, which runs whatever code the file holds. MLflow's own
pickle loading is switched off for the whole platform as well
(`MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`, set in settings).

A refusal is an `UntrustedModel` (a 503 for requests: another version may serve)
and is announced once per process through `signals.model_refused`; monitoring raises
a critical alert on it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from pathlib import Path

import mlflow
import yaml

from core.errors import ApplicationError, UnavailableError

from . import mlflow_access, signals
from .models import ModelVersion

logger = logging.getLogger(__name__)

MANIFEST_ALGORITHM = "sha256"
MLMODEL = "MLmodel"
SKOPS = "skops"
_announced: set[tuple[str, int, str]] = set()
_announced_lock = threading.Lock()


class UntrustedModel(UnavailableError):
    """This version may not be loaded: mlapp did not register it, its files changed, or its format runs code."""


class ModelFormatRefused(ApplicationError):
    """The model's format cannot be loaded without executing code from the file (a 400 when importing)."""


# --- hashes -------------------------------------------------------------------


# MLflow's registry writes this file (the model's name and version, YAML) into the model's
# directory when a version is registered, which can be after mlapp hashed the files; nothing
# loads it as code, so it is left out of the manifest.
REGISTRY_BOOKKEEPING = frozenset({"registered_model_meta"})


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_manifest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under `directory`, by path relative to it (POSIX separators).

    Anything that is not a regular file or a directory (a symlink, a device) is refused:
    it could point outside the model's own files.
    """
    directory = Path(directory)
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise UntrustedModel(f"the model directory holds a symbolic link ({relative}): refused")
        if path.is_dir():
            continue
        if relative in REGISTRY_BOOKKEEPING and path.is_file():
            continue  # written by MLflow's registry after the model is logged; never loaded
        if not path.is_file():
            raise UntrustedModel(f"the model directory holds {relative}, which is not a regular file: refused")
        files[relative] = _file_sha256(path)
    if not files:
        raise UntrustedModel("the model directory is empty")
    return files


def manifest_sha256(files: dict[str, str]) -> str:
    """One hash over the manifest: `sha256sum`-style lines, sorted by path."""
    lines = "".join(f"{files[path]}  {path}\n" for path in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def manifest_differences(recorded: dict[str, str], found: dict[str, str]) -> list[str]:
    """What changed between the recorded files and the ones found, one phrase per file."""
    changed = [f"{path} changed" for path in sorted(recorded) if path in found and found[path] != recorded[path]]
    missing = [f"{path} is missing" for path in sorted(recorded) if path not in found]
    added = [f"{path} was added" for path in sorted(found) if path not in recorded]
    return changed + missing + added


# --- format -------------------------------------------------------------------


def mlmodel_read(directory: Path) -> dict:
    """The model directory's MLmodel file, parsed as plain YAML (no Python objects)."""
    path = Path(directory) / MLMODEL
    if not path.is_file():
        raise ModelFormatRefused("it is not an MLflow model directory: there is no MLmodel file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelFormatRefused(f"its MLmodel file cannot be read: {exc}") from exc
    if not isinstance(document, dict):
        raise ModelFormatRefused("its MLmodel file is not a mapping")
    return document


def skops_file_get(directory: Path) -> Path:
    """The skops file of a scikit-learn model directory, or `ModelFormatRefused` saying why not.

    Accepted: the `sklearn` flavor with `serialization_format: skops`. Everything else loads by
    unpickling (sklearn's pickle and cloudpickle formats, `python_function` models, other flavors).
    """
    directory = Path(directory)
    flavors = mlmodel_read(directory).get("flavors") or {}
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        others = ", ".join(sorted(str(name) for name in flavors)) or "none"
        raise ModelFormatRefused(
            f"it is not a scikit-learn model (its flavors: {others}); mlapp loads only scikit-learn models "
            "saved in the skops format, because other formats load by unpickling, which runs code from the file"
        )
    serialization = sklearn.get("serialization_format")
    if serialization != SKOPS:
        raise ModelFormatRefused(
            f"its scikit-learn model is saved as {serialization or 'pickle'}: loading it unpickles, which can run "
            "arbitrary code from the file; log it with mlflow.sklearn.log_model(..., serialization_format='skops')"
        )
    relative = sklearn.get("pickled_model")
    if not isinstance(relative, str) or not relative:
        raise ModelFormatRefused("its MLmodel file does not name the model file")
    path = (directory / relative).resolve()
    if not path.is_relative_to(directory.resolve()) or not path.is_file():
        raise ModelFormatRefused(f"its model file {relative!r} is not a file inside the model directory")
    return path


def skops_untrusted_types(path: Path) -> list[str]:
    """Types the skops file names that neither skops' defaults nor our trusted-type list allow."""
    import skops.io  # noqa: PLC0415 (skops is only needed when a model is loaded)

    allowed = set(mlflow_access.SKOPS_TRUSTED_TYPES)
    return sorted(t for t in skops.io.get_untrusted_types(file=path) if t not in allowed)


def skops_load(path: Path):
    """Load a skops file with the explicit trusted-type list; types outside it are refused, never built.

    skops audits the whole tree of types against the list before it constructs anything
    (`skops.io.load`: `audit_tree` before `construct`), so one read of the file does both."""
    import skops.io  # noqa: PLC0415 (see above)
    from skops.io.exceptions import UntrustedTypesFoundException  # noqa: PLC0415 (same)

    try:
        return skops.io.load(path, trusted=list(mlflow_access.SKOPS_TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise ModelFormatRefused(
            f"its skops file references types that are not trusted: {exc} "
            "(models_registry.mlflow_access.SKOPS_TRUSTED_TYPES)"
        ) from exc


def model_directory_check(directory: Path) -> Path:
    """A model directory mlapp could load: skops format, trusted types only. Returns its skops file."""
    path = skops_file_get(directory)
    untrusted = skops_untrusted_types(path)
    if untrusted:
        raise ModelFormatRefused(
            f"its skops file references types that are not trusted: {', '.join(untrusted)} "
            "(models_registry.mlflow_access.SKOPS_TRUSTED_TYPES)"
        )
    return path


# --- records and loads ----------------------------------------------------------


def artifacts_download(artifact_uri: str, destination: Path) -> Path:
    """Copy a model's files from the artifact store into `destination` (a fresh private directory)."""
    mlflow_access.tracking_configure()
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(destination)))


def version_artifact_uri(*, name: str, version: int) -> str:
    """Where the registry keeps a version's model files (asked once, when mlapp records them)."""
    return mlflow_access.client().get_model_version_download_uri(name, str(version))


def artifact_record_fields(*, artifact_uri: str) -> dict:
    """What `ModelVersion` records about a version's files when mlapp registers or imports it.

    Refuses (`ModelFormatRefused`) files mlapp would not load, so no version is recorded as trusted
    that could never serve.
    """
    with tempfile.TemporaryDirectory(prefix="mlapp-model-") as scratch:
        local = artifacts_download(artifact_uri, Path(scratch))
        files = artifact_manifest(local)
        model_directory_check(local)
    return {
        "artifact_uri": artifact_uri,
        "artifact_manifest": {"algorithm": MANIFEST_ALGORITHM, "files": files},
        "artifact_sha256": manifest_sha256(files),
    }


def model_refused(*, name: str, version: int, reason: str) -> UntrustedModel:
    """Log and announce (once per process and reason) that a version may not be loaded."""
    key = (name, int(version), reason)
    with _announced_lock:
        first = key not in _announced
        _announced.add(key)
    if first:
        logger.error("Refused to load %s version %s: %s", name, version, reason)
        # Robust: a receiver that fails (the database away) must not turn the refusal into another error.
        for _receiver, result in signals.model_refused.send_robust(
            sender=UntrustedModel, name=name, version=int(version), reason=reason
        ):
            if isinstance(result, Exception):
                logger.error("Could not report the refusal of %s version %s: %s", name, version, result)
    return UntrustedModel(f"{name} version {version} is not trusted: {reason}")


def trusted_pipeline_load(*, name: str, version: int, record):
    """Load a version's scikit-learn pipeline if, and only if, its files are the ones mlapp recorded.

    `record` is the version's `ModelVersion` row, or None when mlapp never registered it.
    """
    if record is None:
        raise model_refused(
            name=name, version=version, reason="mlapp did not register or import it (it was added in MLflow directly)"
        )
    if not record.artifact_sha256 or not record.artifact_uri:
        raise model_refused(
            name=name,
            version=version,
            reason="no hash of its files was recorded (registered before mlapp recorded hashes): check its files, "
            f"then run `manage.py model_hashes_record --model {name} --model-version {version}`",
        )
    recorded = (record.artifact_manifest or {}).get("files") or {}
    with tempfile.TemporaryDirectory(prefix="mlapp-model-") as scratch:
        try:
            local = artifacts_download(record.artifact_uri, Path(scratch))
            found = artifact_manifest(local)
        except UntrustedModel as exc:
            raise model_refused(name=name, version=version, reason=str(exc)) from exc
        except Exception as exc:  # gone from the store, unreadable: nothing to check, so nothing to load
            raise UntrustedModel(f"{name} version {version}: its files cannot be read: {exc}") from exc
        if manifest_sha256(found) != record.artifact_sha256 or found != recorded:
            differences = manifest_differences(recorded, found) or ["the combined hash differs"]
            raise model_refused(
                name=name,
                version=version,
                reason="its files changed since mlapp recorded them: " + "; ".join(differences),
            )
        try:
            return skops_load(skops_file_get(local))
        except ModelFormatRefused as exc:
            raise model_refused(name=name, version=version, reason=str(exc)) from exc


def refusals_forget() -> None:
    """Announce refusals again (tests; a version whose files were restored)."""
    with _announced_lock:
        _announced.clear()


def model_hashes_record(*, name: str | None = None, version: int | None = None) -> list[str]:
    """Record the files of versions mlapp registered before it recorded hashes (one line per version).

    Only versions in mlapp's own table (`ModelVersion`) without a hash are recorded; a recorded hash
    is never replaced. The files are trusted as they are now, so check them first (docs/security.md).
    A version whose format would run code when loaded is not recorded and the line says why.
    """
    versions = ModelVersion.objects.filter(artifact_sha256="").order_by("name", "version")
    if name is not None:
        versions = versions.filter(name=name)
    if version is not None:
        versions = versions.filter(version=version)
    lines = []
    for record in versions:
        try:
            fields = artifact_record_fields(artifact_uri=version_artifact_uri(name=record.name, version=record.version))
        except (ModelFormatRefused, UntrustedModel) as exc:
            lines.append(f"{record.name} v{record.version}: not recorded: {exc}")
            continue
        updated = ModelVersion.objects.filter(pk=record.pk, artifact_sha256="").update(**fields)
        if updated:
            lines.append(f"{record.name} v{record.version}: recorded sha256 {fields['artifact_sha256']}")
    return lines
