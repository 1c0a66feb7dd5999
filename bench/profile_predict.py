"""Where a predict request's time goes: the WSGI app called in process (no HTTP, no gunicorn), with the
statements it sends, the time of each phase, and a profile of the Python it runs.

    DATABASE_URL=postgres://... MLAPP_VAR_DIR=... SECRET_KEY=... \\
        .venv/bin/python bench/profile_predict.py --token KEY [--path /api/v1/models/churn-demo/predict/] [-n 2000]

Needs a database the bootstrap ran on (the demo model served). Prints:
- the statements one request sends, as psycopg sees them (Django's query log misses the health
  check and the one-row INSERT, which go to psycopg directly);
- the mean time per request, then per phase (each phase's function timed inside the others, so a
  phase includes those below it; the timers add about a microsecond each);
- the functions with the most cumulative time (cProfile, which slows Python several times over:
  read it for shape, the phases for time).
"""

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (module, attribute holding the function or class, method or None): the phases timed.
PHASES = [
    ("django.core.handlers.base", "BaseHandler", "_get_response"),
    ("django.core.handlers.base", "BaseHandler", "resolve_request"),
    # A token request to score is answered by the scoring lane; DRF's dispatch serves the rest.
    ("predictions.scoring_lane", None, "scoring_answer"),
    ("predictions.scoring_lane", None, "_admitted"),
    ("rest_framework.views", "APIView", "dispatch"),
    ("rest_framework.views", "APIView", "initial"),
    ("rest_framework.views", "APIView", "perform_authentication"),
    ("rest_framework.views", "APIView", "check_throttles"),
    ("rest_framework.views", "APIView", "perform_content_negotiation"),
    ("rest_framework.request", "Request", "_load_data_and_files"),
    ("predictions.services", None, "predictions_make"),
    ("predictions.services.predict", None, "records_check"),
    ("models_registry.serving", "ServedModel", "predict_records"),
    ("predictions.services.predict", None, "inference_rows_insert"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper", "close_if_health_check_failed"),
    ("psycopg", "Cursor", "execute"),
    ("django.template.response", "SimpleTemplateResponse", "render"),
]


def _timed(phases, totals):
    """Wrap each phase's function so the time spent in it adds up in `totals`."""
    import importlib

    for module_name, owner_name, name in phases:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        function = getattr(owner, name)
        label = f"{owner_name or module_name}.{name}"

        def timed(*args, _function=function, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _function(*args, **kwargs)
            finally:
                totals[_label] += time.perf_counter() - started

        setattr(owner, name, functools.wraps(function)(timed))


def _statements_seen(call):
    """The SQL text of each statement psycopg sends during `call()` (Django's cursors and the health
    check's alike go through `psycopg.Cursor.execute`)."""
    import psycopg

    seen = []
    original = psycopg.Cursor.execute

    def recording(self, query, *args, **kwargs):
        seen.append(query.as_string(None) if hasattr(query, "as_string") else str(query))
        return original(self, query, *args, **kwargs)

    psycopg.Cursor.execute = recording
    try:
        call()
    finally:
        psycopg.Cursor.execute = original
    return seen


def main():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapp.settings")
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    parser.add_argument("--path", default="/api/v1/models/churn-demo/predict/")
    parser.add_argument("--body", default=None, help="JSON body (default: the demo row as {features: ...})")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative or tottime")
    args = parser.parse_args()

    import django
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.wsgi import get_wsgi_application

    from models_registry.demo_data import DEMO_ROWS

    django.setup()
    application = get_wsgi_application()
    body = (args.body or json.dumps({"features": DEMO_ROWS["churn"]})).encode()

    def call(app=application):
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": args.path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Token {args.token}",
        }
        status = []
        chunks = app(environ, lambda s, h: status.append(s))
        answer = b"".join(chunks)
        assert status[0].startswith("200"), (status, answer)

    for _ in range(200):
        call()
    statements = _statements_seen(call)
    print(f"{len(statements)} statements per request:")
    for sql in statements:
        print(f"  {sql[:160]}")

    started = time.perf_counter()
    for _ in range(args.n):
        call()
    print(f"mean {(time.perf_counter() - started) / args.n * 1000:.3f} ms per request (in process, no HTTP)")

    totals = Counter()
    _timed(PHASES, totals)
    timed_application = WSGIHandler()  # a new handler: the old one holds its chain's methods unwrapped
    for _ in range(200):
        call(timed_application)
    totals.clear()
    for _ in range(args.n):
        call(timed_application)
    print("per phase (ms per request; a phase includes the ones it calls):")
    for label, seconds in totals.most_common():
        print(f"  {seconds / args.n * 1000:7.3f}  {label}")

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.n):
        call()
    profile.disable()
    stats = pstats.Stats(profile)
    stats.sort_stats(args.sort).print_stats(45)


if __name__ == "__main__":
    main()
