"""Good files handed over by ingestion for scheduled scoring."""

from ..models import GoodFile


def good_file_register(*, model_name: str, path: str, sha256: str, rows: int) -> GoodFile:
    """Record a validated file for `model_name` to score (idempotent on the model and content hash).

    The file has the model's feature columns and `row_number` (the row in the
    raw file); other columns are ignored.
    """
    good_file, _ = GoodFile.objects.get_or_create(
        model_name=model_name, sha256=sha256, defaults={"path": str(path), "rows": rows}
    )
    return good_file
