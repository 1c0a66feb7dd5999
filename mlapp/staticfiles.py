"""Serve plotly.js from the installed plotly package: no CDN, works air-gapped.

A finder for the one file, rather than a STATICFILES_DIRS prefix, so that
collectstatic does not copy the rest of plotly's package data (~10 MB).
"""

from importlib.util import find_spec
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "plotly/plotly.min.js"


def _package_data() -> Path:
    return Path(find_spec("plotly").origin).parent / "package_data"


class PlotlyJsFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path != PLOTLY_JS:
            return [] if find_all else None
        match = str(_package_data() / "plotly.min.js")
        return [match] if find_all else match

    def list(self, ignore_patterns):
        storage = FileSystemStorage(location=str(_package_data()))
        storage.prefix = "plotly"
        yield "plotly.min.js", storage
