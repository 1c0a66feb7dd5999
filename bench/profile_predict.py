"""Where a predict request's time goes: the WSGI app called in process (no HTTP, no gunicorn), with the
SQL it sends and a profile of the Python it runs.

    DATABASE_URL=postgres://... MLAPP_VAR_DIR=... SECRET_KEY=... \\
        .venv/bin/python bench/profile_predict.py --token KEY [--path /api/v1/models/churn-demo/predict/] [-n 2000]

Needs a database the bootstrap ran on (the demo model served). Prints the statements one request
sends, the mean time per request, and the functions with the most cumulative time.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from models_registry.demo_data import DEMO_ROWS

    django.setup()
    application = get_wsgi_application()
    body = (args.body or json.dumps({"features": DEMO_ROWS["churn"]})).encode()

    def call():
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
        chunks = application(environ, lambda s, h: status.append(s))
        b"".join(chunks)
        assert status[0].startswith("200"), (status, b"".join(chunks))

    for _ in range(200):
        call()
    with CaptureQueriesContext(connection) as queries:
        call()
    print(f"{len(queries)} statements per request:")
    for query in queries.captured_queries:
        print(f"  {query['time']}s  {query['sql'][:160]}")
    started = time.perf_counter()
    for _ in range(args.n):
        call()
    print(f"mean {(time.perf_counter() - started) / args.n * 1000:.3f} ms per request (in process, no HTTP)")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.n):
        call()
    profile.disable()
    stats = pstats.Stats(profile)
    stats.sort_stats(args.sort).print_stats(45)


if __name__ == "__main__":
    main()
