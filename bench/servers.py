"""Start dicomgate for a benchmark: a scratch SQLite DB, uvicorn on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.orthanc_process import free_port


def start_dicomgate(
    orthanc_url: str, workdir: Path, *, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """Migrate a scratch SQLite DB and serve dicomgate with uvicorn on a free loopback port."""
    port = free_port()
    env = {
        **os.environ,
        "DICOMGATE_ORTHANC_URL": orthanc_url,
        "DICOMGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "DICOMGATE_WORKERS": str(workers),
        "DICOMGATE_LOG_LEVEL": "WARNING",
        "DICOMGATE_AUTH_ENABLED": "false",
    }
    cli = [sys.executable, "-m", "dicomgate.cli"]
    subprocess.run(
        [*cli, "db", "upgrade"], env=env, check=True, cwd=workdir, stdout=subprocess.DEVNULL
    )
    proc = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=workdir
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/ris/health/", timeout=10).status_code in (200, 503):
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("dicomgate exited at start")
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("dicomgate did not start within 60 s")
