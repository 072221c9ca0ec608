"""``scripts/run`` as a newcomer and a supervisor use it: a real bash, Orthanc and dicomgate.

Each run gets free ports and its own data folder, so these tests never touch a developer's
``dicomgate-data``. Node.js and npm are taken off the PATH: running the service needs neither.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.orthanc_process import free_port

PROJECT = Path(__file__).resolve().parents[1]
NODE_TOOLS = frozenset({"node", "nodejs", "npm", "npx", "corepack"})

pytestmark = pytest.mark.slow


def path_without_node(folder: Path) -> str:
    """A PATH with every command of the current one except Node.js and npm (symlinks)."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = folder / entry.name
            if entry.name in NODE_TOOLS or target.exists() or target.is_symlink():
                continue
            if os.access(entry.path, os.X_OK) and not entry.is_dir():
                target.symlink_to(entry.path)
    return str(folder)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Run:
    """One ``scripts/run`` process, its ports, data folder and log."""

    proc: subprocess.Popen[bytes]
    port: int
    orthanc_port: int
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "run: dicomgate on" in self.text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"scripts/run exited with {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.3)
        pytest.fail(f"scripts/run was not ready within {timeout} s:\n{self.text()}")

    def orthanc_pid(self) -> int:
        found = re.search(r"run: Orthanc on \S+ \(pid (\d+),", self.text())
        assert found, self.text()
        return int(found.group(1))

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=90)


def start_run(
    tmp_path: Path, name: str, *, data_dir: Path | None = None, orthanc_port: int | None = None
) -> Run:
    port, orthanc = free_port(), orthanc_port or free_port()
    data = data_dir or tmp_path / f"{name}-data"
    log = tmp_path / f"{name}.log"
    env = {
        **os.environ,
        "PATH": path_without_node(tmp_path / "bin-without-node"),
        "PORT": str(port),
        "ORTHANC_PORT": str(orthanc),
        "DICOMGATE_DATA_DIR": str(data),
        "DICOMGATE_WORKERS": "1",
    }
    for variable in ("DICOMGATE_DATABASE_URL", "DICOMGATE_JOURNAL_DIR", "DICOMGATE_ORTHANC_URL"):
        env.pop(variable, None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(PROJECT / "scripts" / "run")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=out,
            preexec_fn=terminal_signals,
        )
    return Run(proc, port, orthanc, data, log)


def terminal_signals() -> None:
    """The script starts with a terminal's signal state, not this test process's: an earlier
    test in the same (xdist) process may leave SIGINT ignored or blocked, and a shell can
    never trap a signal it was started with ignored (Ctrl-C would then do nothing)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    """Runs started by a test; whatever is still running at the end is stopped."""
    started: list[Run] = []
    yield started
    for run in reversed(started):
        run.stop(signal.SIGTERM)  # the script stops its dicomgate and Orthanc (never SIGKILL)


def test_runs_without_node_and_sigterm_stops_dicomgate_and_its_orthanc(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = start_run(tmp_path, "first")
    runs.append(run)
    run.wait_ready()
    health = httpx.get(f"{run.url}/api/ris/health/", timeout=30)
    assert health.status_code == 200, health.text
    assert health.json()["orthanc"]["ok"] is True
    orthanc_pid = run.orthanc_pid()
    # The database is in the data folder, where the dicomgate command looks by default.
    assert (run.data_dir / "dicomgate.db").is_file()
    assert f"database {run.data_dir / 'dicomgate.db'} at revision head" in run.text()

    assert run.stop(signal.SIGTERM) == 128 + signal.SIGTERM
    assert not listening(run.port), "dicomgate still listens after SIGTERM to scripts/run"
    assert not listening(run.orthanc_port), "Orthanc still listens after SIGTERM to scripts/run"
    assert not alive(orthanc_pid)
    assert "Application shutdown complete" in run.text()  # dicomgate stopped gracefully
    assert "run: stopped" in run.text()


def test_a_second_run_refuses_and_a_foreign_orthanc_gets_a_loud_warning(
    tmp_path: Path, runs: list[Run]
) -> None:
    first = start_run(tmp_path, "first")
    runs.append(first)
    first.wait_ready()
    config = (first.data_dir / "orthanc" / "orthanc.json").read_bytes()
    orthanc_log = first.data_dir / "orthanc" / "orthanc.log"
    log_size = orthanc_log.stat().st_size

    # The same data folder (the same clone): refused, nothing of the first run touched.
    second = start_run(tmp_path, "second", data_dir=first.data_dir)
    assert second.proc.wait(timeout=90) == 1
    assert (
        f"run: scripts/run is already running with the data folder {first.data_dir} "
        f"(pid {first.proc.pid}); stop it first" in second.text()
    )
    assert (first.data_dir / "orthanc" / "orthanc.json").read_bytes() == config
    assert orthanc_log.stat().st_size >= log_size  # appended to by Orthanc, never truncated
    assert httpx.get(f"{first.url}/api/ris/health/", timeout=30).status_code == 200

    # Another data folder on the first run's Orthanc port: used, with a loud warning, and left
    # running when this run stops.
    third = start_run(tmp_path, "third", orthanc_port=first.orthanc_port)
    runs.append(third)
    third.wait_ready()
    text = third.text()
    assert f"WARNING: AN ORTHANC IS ALREADY ANSWERING ON 127.0.0.1:{first.orthanc_port}" in text
    assert "AUTHENTICATION IS OFF THERE" in text
    assert "will NOT stop it" in text
    assert "run: Orthanc on" not in text  # it started none
    assert not (third.data_dir / "orthanc" / "orthanc.json").exists()
    assert third.stop(signal.SIGINT) == 130
    assert not listening(third.port)
    system = httpx.get(f"http://127.0.0.1:{first.orthanc_port}/system", timeout=10)
    assert json.loads(system.text)["Name"] == "dicomgate-local"  # the first run's, still up
    assert first.stop() == 128 + signal.SIGTERM
