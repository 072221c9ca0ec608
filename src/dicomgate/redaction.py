"""Keep credentials written inside URLs (``http://user:password@host``) out of logs and answers.

``DICOMGATE_ORTHANC_URL``, ``DICOMGATE_DATABASE_URL`` and ``DICOMGATE_JWKS_URL`` may carry a
password in their user info (RFC 3986 §3.2.1). ``redact_url`` is how dicomgate shows such a URL;
``RedactCredentials``, on the log handler, is the backstop for every other line (a driver's
error message, a traceback) that quotes one.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://user:password@ — the password part, whatever the scheme.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@/\s]*)@")


def redact_url(url: str) -> str:
    """The URL with the password of its user info masked (the user name is kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:{MASK}@{host}" if parts.username else f":{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str) -> str:
    """Any ``scheme://user:password@`` inside free text, with the password masked."""
    return _USERINFO.sub(rf"\g<head>:{MASK}@", text)


class RedactCredentials(logging.Filter):
    """On the log handler: the record's message and traceback with URL passwords masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
