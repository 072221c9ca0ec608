"""Keep personal health data out of logs unless ``DICOMGATE_LOG_PHI=true``.

Log calls wrap identifying values in ``Phi``: it prints as redacted wherever it goes, and only
the filter that ``configure_logging`` installs with ``log_phi`` on puts the value back.
"""

from __future__ import annotations

import logging
from typing import Any

REDACTED = "<phi redacted>"


class Phi:
    """A log argument that is personal health data (patient ID or name, a file name …)."""

    __slots__ = ("redacted", "value")

    def __init__(self, value: object, *, redacted: str = REDACTED) -> None:
        self.value = value
        self.redacted = redacted

    def __str__(self) -> str:
        return self.redacted

    __repr__ = __str__


class RevealPhi(logging.Filter):
    """Installed only when ``log_phi`` is on: log records show the real values."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(a.value if isinstance(a, Phi) else a for a in args)
        elif isinstance(args, dict):
            record.args = {k: v.value if isinstance(v, Phi) else v for k, v in args.items()}
        return True
