"""The test harness starts real processes on free ports; it must know which process answers."""

from __future__ import annotations

import os
import socket

from tests.orthanc_process import free_port, listens


def test_a_listening_socket_is_found_as_its_process_own() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert listens(os.getpid(), port)
        assert not listens(os.getppid(), port)  # another process on the port is not this one
    assert not listens(os.getpid(), port)  # closed
    assert not listens(os.getpid(), free_port())  # bound once, never listened on here
