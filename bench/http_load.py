"""The HTTP load the serving benchmarks drive (bench/serving.py, bench/shadow.py): one keep-alive
client per thread, the same for every server measured, so a difference is the server's."""

from __future__ import annotations

import http.client
import threading
import time


def server_wait(port: int, path: str, timeout: float = 600) -> None:
    """Until something answers GET path on 127.0.0.1:port (a first request may load a model: a minute
    on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing answered on port {port}")


def requests_drive(port, path, body, headers, n_requests, n_clients, *, answer_check=None):
    """Latencies (ms) and elapsed seconds of n_requests POSTs over n_clients keep-alive connections.

    Every answer must be a 200 and, when ``answer_check`` is given, pass it (it returns what is wrong
    with a payload, or None); the first few wrong ones are raised after the run."""
    latencies, errors = [], []
    per_client = max(n_requests // n_clients, 1)

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_client):
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            mine.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                errors.append((response.status, payload[:200]))
            elif answer_check is not None and (wrong := answer_check(payload)):
                errors.append((wrong, payload[:200]))
        latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise AssertionError(f"bad answers on {path}: {errors[:3]}")
    return latencies, elapsed
