"""A separate process that uses a backend, for race and visibility tests.

Run as ``python _worker.py MODE SPEC_JSON [ARGS...]``; S3 credentials come from the
environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), exercising `EnvCredentials`.
It prints "ready", waits for a line on stdin (the start signal) and then:

- ``race KEY PAYLOAD``: put_if_absent(KEY, PAYLOAD) and print "won" or "lost";
- ``write KEY SIZE``: put KEY alternately as SIZE bytes of b"A" and b"B" until stdin
  closes, then print how many puts it made.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from reconciler.repository import EnvCredentials, RepositoryBackend, open_backend


def _open(spec: dict[str, Any]) -> RepositoryBackend:
    settings = dict(spec)
    kind = settings.pop("kind")
    if kind == "s3":
        settings["credentials"] = EnvCredentials()
    backend: RepositoryBackend = open_backend(kind, **settings)
    return backend


def main() -> None:
    mode, spec = sys.argv[1], json.loads(sys.argv[2])
    backend = _open(spec)
    if spec["kind"] == "s3":
        backend.exists("warm-up")  # build the client and connect before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "race":
        key, payload = sys.argv[3], sys.argv[4].encode()
        print("won" if backend.put_if_absent(key, payload) else "lost", flush=True)
    elif mode == "write":
        key, size = sys.argv[3], int(sys.argv[4])
        payloads = (b"A" * size, b"B" * size)
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        count = 0
        while not stop.is_set():
            backend.put(key, payloads[count % 2])
            count += 1
        print(count, flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
