"""OHIF's HTJ2K decoder as an independent check: ``@cornerstonejs/codec-openjph`` run in Node.

The viewer's decoder (OpenJPH built for WebAssembly) is pinned in tests/frontend/package.json at
the version OHIF's viewer ships; ``tests/frontend/openjph_decode.mjs`` calls it the way
Cornerstone3D's dicom-image-loader does. One Node process per test session decodes every
codestream sent to it, one request and one answer at a time over its pipes.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import IO

import numpy as np
import pydicom
from pydicom.encaps import generate_frames

FRONTEND_DIR = Path(__file__).resolve().parents[1] / "frontend"
SCRIPT = FRONTEND_DIR / "openjph_decode.mjs"
PACKAGE = FRONTEND_DIR / "node_modules" / "@cornerstonejs" / "codec-openjph"
SETUP_HINT = "run scripts/setup-tests (it installs tests/frontend's Node packages with npm ci)"


class OpenJPHError(AssertionError):
    """The viewer's decoder rejected a codestream."""


@dataclass(frozen=True)
class ViewerFrame:
    """One frame as the viewer's decoder returns it."""

    width: int
    height: int
    bits_per_sample: int
    signed: bool
    components: int
    pixels: np.ndarray  # rows × columns [× components], the loader's typed array reshaped


class OpenJPH:
    """A running ``openjph_decode.mjs``: ``decode`` sends one codestream and reads its frame."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError(f"node is not installed: install Node.js >= 20, then {SETUP_HINT}")
        if not PACKAGE.is_dir():
            raise RuntimeError(f"@cornerstonejs/codec-openjph is not installed: {SETUP_HINT}")
        self._node = node
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [self._node, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,  # the module's banner, and why it died if it did
            cwd=FRONTEND_DIR,
        )

    def decode(self, codestream: bytes) -> ViewerFrame:
        """Decode one HTJ2K codestream as the viewer would; raise OpenJPHError if it cannot."""
        stdin, stdout = self._pipes()
        stdin.write(struct.pack("<I", len(codestream)) + codestream)
        stdin.flush()
        header = json.loads(self._read_record(stdout))
        data = self._read_record(stdout)
        if header["error"] is not None:
            # An abort leaves the WebAssembly runtime unusable: the next codestream gets a new one.
            self._stop()
            self._proc = self._start()
            raise OpenJPHError(header["error"])
        depth = "2" if header["bitsPerSample"] > 8 else "1"
        dtype = np.dtype(("<i" if header["isSigned"] else "<u") + depth)
        shape = (header["height"], header["width"])
        if header["componentCount"] > 1:
            shape += (header["componentCount"],)
        return ViewerFrame(
            width=header["width"],
            height=header["height"],
            bits_per_sample=header["bitsPerSample"],
            signed=header["isSigned"],
            components=header["componentCount"],
            pixels=np.frombuffer(data, dtype=dtype).reshape(shape),
        )

    def decode_instance(self, data: bytes) -> np.ndarray:
        """Every frame of an encapsulated DICOM file, shaped like pydicom's ``pixel_array``."""
        ds = pydicom.dcmread(BytesIO(data))
        count = int(ds.get("NumberOfFrames") or 1)
        frames = [
            self.decode(f).pixels for f in generate_frames(ds.PixelData, number_of_frames=count)
        ]
        return frames[0] if count == 1 else np.stack(frames)

    def close(self) -> None:
        """End the Node process."""
        self._stop()
        self._log.close()

    def _stop(self) -> None:
        """End the Node process (it exits when its stdin closes)."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None or self._proc.poll() is not None:
            raise RuntimeError(f"openjph_decode.mjs is not running: {self._stderr()}")
        return stdin, stdout

    def _read_record(self, stream: IO[bytes]) -> bytes:
        size = struct.unpack("<I", self._read_exactly(stream, 4))[0]
        return self._read_exactly(stream, size)

    def _read_exactly(self, stream: IO[bytes], size: int) -> bytes:
        data = stream.read(size)
        if len(data) != size:
            raise RuntimeError(f"openjph_decode.mjs ended early: {self._stderr()}")
        return data

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace") or f"no output ({SETUP_HINT})"
