"""The real app under a real uvicorn, in a thread of the test process, on a loopback port.

For clients that need a socket (a browser, the synchronous dicomweb-client). uvicorn runs its
own event loop in the thread; ``should_exit`` stops it the way a signal would (lifespan
shutdown included), and the caller waits for the thread to end.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


@contextmanager
def serve_in_thread(app: FastAPI, *, start_timeout: float = 60) -> Iterator[str]:
    """Serve ``app`` on a port the kernel picks (no race for a free port); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: leave the test process's logging as it is.
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None, access_log=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="dicomgate-uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("dicomgate did not start under uvicorn")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not shut down"
