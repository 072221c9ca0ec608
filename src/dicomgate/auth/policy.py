"""Which scope each route needs: one table, so no route can be added without a decision.

A route missing from this table is refused to everyone (default deny), and the test suite fails
on it. ``None`` marks the few public routes (health and the API docs).
"""

from __future__ import annotations

from typing import Final

READ: Final = "dicom:read"
WRITE: Final = "dicom:write"
DELETE: Final = "dicom:delete"
PATIENTS_READ: Final = "patients:read"
PATIENTS_WRITE: Final = "patients:write"
ADMIN: Final = "admin"
METRICS: Final = "metrics"  # a scraper's key needs only this (no access to any image)
ALL_SCOPES: Final = frozenset({READ, WRITE, DELETE, PATIENTS_READ, PATIENTS_WRITE, ADMIN, METRICS})

PUBLIC: Final = None

# DICOMweb QIDO-RS and WADO-RS (PS3.18 §10.6, §10.4): reads
_STUDY = "/dicomweb/studies/{study_instance_uid}"
_SERIES = _STUDY + "/series/{series_instance_uid}"
_INSTANCE = _SERIES + "/instances/{sop_instance_uid}"
_FRAMES = _INSTANCE + "/frames/{frame_list}"
DICOMWEB_SEARCHES: Final = (
    "/dicomweb/studies",
    "/dicomweb/series",
    "/dicomweb/instances",
    _STUDY + "/series",
    _STUDY + "/instances",
    _SERIES + "/instances",
)
DICOMWEB_RETRIEVALS: Final = (
    _STUDY,
    _SERIES,
    _INSTANCE,
    _STUDY + "/metadata",
    _SERIES + "/metadata",
    _INSTANCE + "/metadata",
    _FRAMES,
    _INSTANCE + "/bulk/{bulk_path}",
    *(
        f"{base}/{kind}"
        for kind in ("rendered", "thumbnail")
        for base in (_STUDY, _SERIES, _INSTANCE, _FRAMES)
    ),
)

ROUTE_SCOPES: dict[tuple[str, str], str | None] = {
    # health and docs
    ("GET", "/api/ris/health/"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/metrics"): METRICS,
    # browse
    ("GET", "/api/orthanc/patients/"): READ,
    ("GET", "/api/orthanc/studies/"): READ,
    ("GET", "/api/orthanc/series/"): READ,
    ("GET", "/api/orthanc/instances/"): READ,
    ("GET", "/api/orthanc/instances/{instance_id}/file/"): READ,
    ("GET", "/api/orthanc/instances/{instance_id}/preview/"): READ,
    ("GET", "/api/orthanc/patients/{patient_id}/images/"): READ,
    ("DELETE", "/api/orthanc/patients/{orthanc_id}/"): DELETE,
    ("DELETE", "/api/orthanc/studies/{orthanc_id}/"): DELETE,
    ("DELETE", "/api/orthanc/series/{orthanc_id}/"): DELETE,
    ("DELETE", "/api/orthanc/instances/{orthanc_id}/"): DELETE,
    # ingest
    ("POST", "/api/ris/upload/dicom/"): WRITE,
    ("POST", "/api/orthanc/upload-patient/"): WRITE,
    # DICOMweb STOW-RS
    ("POST", "/dicomweb/studies"): WRITE,
    ("POST", "/dicomweb/studies/{study_instance_uid}"): WRITE,
    # patients
    ("GET", "/api/ris/patients/"): PATIENTS_READ,
    ("GET", "/api/ris/patients/{patient_id}/"): PATIENTS_READ,
    ("PUT", "/api/ris/patients/{patient_id}/"): PATIENTS_WRITE,
    ("DELETE", "/api/ris/patients/{patient_id}/"): PATIENTS_WRITE,
    ("POST", "/api/ris/patients/import/"): PATIENTS_WRITE,
    # conversions (admin)
    ("POST", "/api/ris/conversions/"): ADMIN,
    ("GET", "/api/ris/conversions/"): ADMIN,
    ("GET", "/api/ris/conversions/{job_id}/"): ADMIN,
    ("POST", "/api/ris/conversions/{job_id}/cancel/"): ADMIN,
    # compression rules (admin)
    ("GET", "/api/ris/rules/"): ADMIN,
    ("GET", "/api/ris/rules/backlog/"): ADMIN,
    ("POST", "/api/ris/rules/{name}/pause/"): ADMIN,
    ("POST", "/api/ris/rules/{name}/resume/"): ADMIN,
    # audit
    ("GET", "/api/ris/audit/"): ADMIN,
    # storage statistics: counts and bytes, no patient data
    ("GET", "/api/ris/statistics/"): READ,
    **{("GET", path): READ for path in DICOMWEB_SEARCHES + DICOMWEB_RETRIEVALS},
}

# Actions written to the audit trail (with refused and failed attempts): every read and write
# of patient data. The action names map to DICOM audit events (audit/atna.py).
AUDITED_ACTIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/orthanc/patients/"): "query",
    ("GET", "/api/orthanc/studies/"): "query",
    ("GET", "/api/orthanc/series/"): "query",
    ("GET", "/api/orthanc/instances/"): "query",
    ("GET", "/api/orthanc/patients/{patient_id}/images/"): "query",
    ("GET", "/api/orthanc/instances/{instance_id}/preview/"): "preview",
    ("GET", "/api/orthanc/instances/{instance_id}/file/"): "download",
    ("DELETE", "/api/orthanc/patients/{orthanc_id}/"): "delete",
    ("DELETE", "/api/orthanc/studies/{orthanc_id}/"): "delete",
    ("DELETE", "/api/orthanc/series/{orthanc_id}/"): "delete",
    ("DELETE", "/api/orthanc/instances/{orthanc_id}/"): "delete",
    ("POST", "/api/ris/upload/dicom/"): "upload",
    ("POST", "/api/orthanc/upload-patient/"): "upload",
    ("POST", "/dicomweb/studies"): "upload",
    ("POST", "/dicomweb/studies/{study_instance_uid}"): "upload",
    ("GET", "/api/ris/patients/"): "patient_read",
    ("GET", "/api/ris/patients/{patient_id}/"): "patient_read",
    ("PUT", "/api/ris/patients/{patient_id}/"): "patient_change",
    ("DELETE", "/api/ris/patients/{patient_id}/"): "patient_change",
    ("POST", "/api/ris/patients/import/"): "patient_change",
    ("POST", "/api/ris/conversions/"): "convert",
    ("POST", "/api/ris/conversions/{job_id}/cancel/"): "convert",
    ("POST", "/api/ris/rules/{name}/pause/"): "rules",
    ("POST", "/api/ris/rules/{name}/resume/"): "rules",
    ("GET", "/api/ris/audit/"): "audit_read",
    **{("GET", path): "query" for path in DICOMWEB_SEARCHES},
    **{("GET", path): "retrieve" for path in DICOMWEB_RETRIEVALS},
}

UNCLASSIFIED: Final = object()


def required_scope(method: str, path: str) -> str | object | None:
    """The scope a route needs, ``None`` when public, ``UNCLASSIFIED`` when nobody decided."""
    return ROUTE_SCOPES.get((method.upper(), path), UNCLASSIFIED)
