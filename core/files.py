"""Writing files atomically: a reader sees the whole file or none of it."""

from pathlib import Path


def upload_save(upload, destination: Path) -> Path:
    """Save an uploaded file (Django UploadedFile) as `destination`, via a .part name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    with partial.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    partial.replace(destination)
    return destination
