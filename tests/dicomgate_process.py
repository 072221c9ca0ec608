"""Start dicomgate as a real server process (``dicomgate serve``) for tests and benchmarks:
a scratch SQLite database, migrated, and uvicorn on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

from tests.orthanc_process import free_port, listens


def start_dicomgate(
    orthanc_url: str,
    workdir: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    stderr: IO[bytes] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Migrate a scratch SQLite DB and serve dicomgate; returns the process and its base URL.

    ``env`` adds or overrides DICOMGATE_* variables; ``stderr`` receives the server's logs.
    """
    full_env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": orthanc_url,
        "DICOMGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'dicomgate.db'}",
        "DICOMGATE_WORKERS": str(workers),
        "DICOMGATE_LOG_LEVEL": "WARNING",
        "DICOMGATE_AUTH_ENABLED": "false",
        **(env or {}),
    }
    cli = [sys.executable, "-m", "dicomgate.cli"]
    subprocess.run(
        [*cli, "db", "upgrade"], env=full_env, check=True, cwd=workdir, capture_output=True
    )
    # The port is free when picked, yet another test's process may bind it first: then this one
    # exits at start, and only its own listening socket proves which process answers the probe.
    for _ in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            cwd=workdir,
            stderr=stderr,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if listens(proc.pid, port):
                try:
                    if httpx.get(f"{url}/api/ris/health/", timeout=10).status_code in (200, 503):
                        return proc, url
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        else:
            proc.terminate()
            raise RuntimeError("dicomgate did not start within 60 s")
    raise RuntimeError(f"dicomgate exited at start three times (last code {proc.returncode})")


def stop_dicomgate(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Stop it the way a service manager does (SIGTERM, graceful), then make sure."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
