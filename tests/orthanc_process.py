"""A real Orthanc (Debian's ``/usr/sbin/Orthanc``) on a free loopback port, for the tests.

By default each Orthanc has its own SQLite index and storage folder. Given ``index_database``, it
keeps its index in that PostgreSQL database instead (Debian's ``orthanc-postgresql`` 4.0 index
plugin, installed by scripts/setup-tests), so several Orthanc processes can share one index and,
with ``storage_dir``, one storage folder: see tests/orthanc_cluster.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

ORTHANC_BINARY = os.environ.get(
    "DICOMGATE_TEST_ORTHANC", shutil.which("Orthanc") or "/usr/sbin/Orthanc"
)
POSTGRESQL_INDEX_PLUGIN = Path(
    os.environ.get(
        "DICOMGATE_TEST_ORTHANC_POSTGRESQL_INDEX",
        "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so",
    )
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the listening TCP socket on ``port`` (Linux ``/proc``).

    A port from :func:`free_port` is free only when it is picked: another test's process can bind
    it first, and then answers the readiness probe in place of the process just started. Only a
    socket that process owns proves it is the one answering.
    """
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
            return True
    return False


class PortTaken(RuntimeError):
    """The process could not bind its port: another process took it after it was picked."""


class OrthancProcess:
    """Start, stop and restart an Orthanc with its own storage folder and generated config."""

    def __init__(
        self,
        workdir: Path,
        *,
        overwrite_instances: bool = False,
        extra_config: dict[str, object] | None = None,
        storage_dir: Path | None = None,
        index_database: str | None = None,
    ) -> None:
        """``extra_config``: more Orthanc options (e.g. ``{"UserMetadata": {"Comment": 1024}}``).

        ``storage_dir``: the folder of DICOM files (default: ``workdir/storage``), which several
        Orthanc on one index must share. ``index_database``: a libpq URI
        (``postgresql://user@host:port/name``) of the PostgreSQL database that holds the index.
        """
        self.workdir = workdir
        self.port = free_port()
        self.dicom_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.overwrite_instances = overwrite_instances
        self.log_path = workdir / "orthanc.log"
        self.config_path = workdir / "orthanc.json"
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir = storage_dir or workdir / "storage"
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        extra = dict(extra_config or {})
        config: dict[str, object] = {
            "Name": "dicomgate-test",
            "StorageDirectory": str(self.storage_dir),
            # Never shared: a SQLite index is one Orthanc's (unused with a PostgreSQL index).
            "IndexDirectory": str(workdir / "index") if storage_dir else str(self.storage_dir),
            "HttpPort": self.port,
            "DicomPort": self.dicom_port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpTimeout": 60,
            "Plugins": [],
            "OverwriteInstances": overwrite_instances,
            "StorageCompression": False,
            "ConcurrentJobs": 2,
            "SaveJobs": False,
            "StableAge": 1,
            **extra,
        }
        if index_database is not None:
            config.update(postgresql_index_config(index_database, plugins=extra.get("Plugins")))
        self._config = config
        self.config_path.write_text(json.dumps(config, indent=2))
        self._started_once = False

    def _new_ports(self) -> None:
        """Pick other ports before a first start whose port another process took meanwhile."""
        self.port = free_port()
        self.dicom_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._config.update(HttpPort=self.port, DicomPort=self.dicom_port)
        self.config_path.write_text(json.dumps(self._config, indent=2))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        for attempt in range(3):
            try:
                self._start(timeout)
            except PortTaken:
                if self._started_once or attempt == 2:
                    raise
                self._new_ports()
            else:
                self._started_once = True
                return

    def _start(self, timeout: float) -> None:
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:  # Orthanc keeps its own copy of the descriptor
            self._proc = subprocess.Popen(
                [ORTHANC_BINARY, str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                printed = self.log_path.read_bytes()[log_start:].decode(errors="replace")
                error = PortTaken if "privileged or already in use" in printed else RuntimeError
                raise error(f"Orthanc exited at start; see {self.log_path}:\n" + printed[-3000:])
            try:
                answer = httpx.get(f"{self.url}/system", timeout=1)
                if answer.status_code == 200 and listens(self._proc.pid, self.port):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Stop it at once (SIGKILL), as a crash or a power cut would: no graceful shutdown."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def clear(self) -> None:
        """Delete every patient (and so everything) stored."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for pid in client.get("/patients").json():
                client.delete(f"/patients/{pid}")

    def store(self, data: bytes) -> dict[str, str]:
        """Store a DICOM file through Orthanc's own REST API; return its answer."""
        response = httpx.post(f"{self.url}/instances", content=data, timeout=60)
        response.raise_for_status()
        result: dict[str, str] = response.json()
        return result


def postgresql_index_config(uri: str, *, plugins: object = None) -> dict[str, object]:
    """The Orthanc options that put its index, and only its index, in PostgreSQL ``uri``.

    For plugin 4.0 on Orthanc >= 1.9.2 (Debian's 4.0 on 1.10.1): ``Lock: false`` lets several
    Orthanc share the index (the plugin's advisory lock would refuse the second one); Orthanc
    replays a transaction that collides with another writer's (``MaximumConnectionRetries``
    times, 100 ms longer each time, then 503). ``EnableStorage: false`` and only the index
    plugin loaded: the DICOM files stay in the storage folder.
    """
    if not POSTGRESQL_INDEX_PLUGIN.exists():
        raise RuntimeError(
            f"Orthanc's PostgreSQL index plugin is missing ({POSTGRESQL_INDEX_PLUGIN}): "
            "run scripts/setup-tests (it installs Debian's orthanc-postgresql)"
        )
    more = list(plugins) if isinstance(plugins, list) else []
    return {
        "Plugins": [str(POSTGRESQL_INDEX_PLUGIN), *more],
        "PostgreSQL": {
            "EnableIndex": True,
            "EnableStorage": False,
            "ConnectionUri": uri,
            "Lock": False,
            "IndexConnectionsCount": 2,
            "MaximumConnectionRetries": 10,
            "ConnectionRetryInterval": 1,
        },
    }
