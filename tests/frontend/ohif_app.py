"""The built OHIF viewer served on loopback, configured with one DICOMweb data source.

``scripts/setup`` unpacks ``@ohif/app``'s ``dist/`` into tests/frontend/ohif-viewer/<version>
(pinned in package.json, see install_ohif_viewer.mjs). ``serve_ohif`` serves it the way a
hospital's web server would: files as they are, ``/app-config.js`` replaced by ours, and every
other path answered with index.html (the viewer is a single-page app: ``/viewer?…`` is a route).
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FRONTEND_DIR = Path(__file__).resolve().parent
PIN = json.loads((FRONTEND_DIR / "package.json").read_text(encoding="utf-8"))["ohifViewer"]
OHIF_DIST = FRONTEND_DIR / "ohif-viewer" / PIN["version"]
DATA_SOURCE = "dicomgate"

# Served with the right types, whatever the machine's mime.types says (WebAssembly.instantiate-
# Streaming refuses a .wasm that is not application/wasm).
MIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


def app_config(dicomweb_root: str) -> str:
    """OHIF's ``window.config``: one DICOMweb data source, dicomgate's ``/dicomweb``.

    The bearer token is not here: OHIF 3.13 reads it from the viewer URL's ``token`` parameter
    (routes/Mode/updateAuthServiceAndCleanUrl.ts), hands ``Authorization: Bearer …`` to every
    DICOMweb and image request through its user authentication service, and removes the
    parameter from the address bar.
    """
    config: dict[str, Any] = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": DATA_SOURCE,
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": DATA_SOURCE,
                "configuration": {
                    "friendlyName": "dicomgate",
                    "name": DATA_SOURCE,
                    "wadoUriRoot": dicomweb_root,
                    "qidoRoot": dicomweb_root,
                    "wadoRoot": dicomweb_root,
                    "qidoSupportsIncludeField": True,
                    "supportsReject": False,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True},
                },
            }
        ],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


@dataclass
class OhifServer:
    """A running static server: its base URL, the config it serves, and the paths it was asked."""

    url: str
    config: str = ""
    requested: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # asset-like paths not in dist/


def _handler(server: OhifServer, dist: Path) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(dist), **kwargs)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            server.requested.append(path)
            if path == "/app-config.js":
                self._send(server.config.encode(), "text/javascript")
                return
            target = (dist / path.lstrip("/")).resolve()
            if target.is_file() and target.is_relative_to(dist):
                super().do_GET()
                return
            if Path(path).suffix:  # a file the app asked for that the build does not have
                server.missing.append(path)
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self._send((dist / "index.html").read_bytes(), "text/html")  # an app route

        def guess_type(self, path: str | Any) -> str:
            return (
                MIME_TYPES.get(Path(str(path)).suffix)
                or mimetypes.guess_type(str(path))[0]
                or ("application/octet-stream")
            )

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reports what it needs

    return Handler


@contextmanager
def serve_ohif(dist: Path = OHIF_DIST) -> Iterator[OhifServer]:
    """Serve the viewer on a loopback port the kernel picks; set ``.config`` before opening it."""
    holder = OhifServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(holder, dist.resolve()))
    httpd.daemon_threads = True
    holder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="ohif-static", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
