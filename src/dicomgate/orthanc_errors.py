"""Orthanc's failures as dicomgate's errors: transport failures, timeouts and error answers
become domain errors here (counted by kind), so nothing above ``orthanc.py`` sees httpx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from dicomgate.errors import (
    DicomgateError,
    NotFound,
    OrthancError,
    OrthancRejectedFile,
    OrthancTimeout,
    OrthancUnavailable,
)
from dicomgate.metrics import record_orthanc_error

E = TypeVar("E", bound=DicomgateError)
P = TypeVar("P")


def counted(exc: E) -> E:
    """Count an Orthanc failure by kind (``dicomgate_orthanc_errors_total``) as it is raised."""
    record_orthanc_error(exc.type)
    return exc


@contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """Convert httpx transport failures into domain errors (credentials never in messages)."""
    try:
        yield
    except httpx.InvalidURL:
        # Only a caller's identifier can make the path invalid (a control character, say):
        # nothing of that name can exist in Orthanc.
        raise NotFound(f"No such resource ({what})") from None
    except httpx.TimeoutException:
        raise counted(OrthancTimeout(f"Orthanc did not answer in time ({what})")) from None
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        raise counted(OrthancUnavailable(f"Orthanc is unreachable ({what})")) from None
    except httpx.TransportError as exc:
        raise counted(
            OrthancUnavailable(f"Orthanc is unreachable ({what}: {type(exc).__name__})")
        ) from None


def raise_for_status(
    response: httpx.Response, what: str, not_found: str | None, *, storing: bool = False
) -> None:
    if response.is_success:
        return
    if response.status_code == 404 and not_found is not None:
        raise NotFound(not_found)
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("Details") or body.get("Message") or "")
    except ValueError:
        detail = response.text[:200] if response.text else ""
    if response.status_code in (401, 403):
        detail = "dicomgate's Orthanc credentials were refused"
    elif storing and response.status_code in (400, 404, 415):
        # Orthanc parsed the file and refused it (e.g. "Inexistent tag" for a missing Study
        # Instance UID): the file is at fault, not Orthanc.
        refused = f"Orthanc refused the file: {detail}" if detail else "Orthanc refused the file"
        raise counted(OrthancRejectedFile(refused))
    message = f"Orthanc answered {response.status_code} to {what}"
    raise counted(OrthancError(f"{message}: {detail}" if detail else message))


def parsed(parse: Callable[[Any], P], result: Any) -> P:
    """An answer parsed into its typed value; one that does not parse is a counted error."""
    try:
        return parse(result)
    except OrthancError as exc:
        raise counted(exc) from None
