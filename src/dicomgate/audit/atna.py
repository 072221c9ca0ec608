"""Audit entries as DICOM Audit Messages (PS3.15 Annex A.5) for an IHE ATNA audit repository.

One message per audited request. The event is chosen from the action (``EVENTS``); a request
refused for its credentials (401) is a User Authentication event, one refused for its scope
(403) a Security Alert, whatever it asked for. The participants: the caller (requestor, with
its network address) and dicomgate; the participant objects: each patient (RFC 3881 "Patient
Number") and each study (DCM 110180) the request touched, and, for queries, the query itself.
"""

from __future__ import annotations

import base64
import os
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlencode

from dicomgate.audit.service import AuditEntry


@dataclass(frozen=True)
class Code:
    """A coded value of the audit message schema (``csd-code``, ``codeSystemName``, text)."""

    code: str
    system: str
    meaning: str

    def element(self, parent: ET.Element, tag: str) -> ET.Element:
        return ET.SubElement(
            parent,
            tag,
            {"csd-code": self.code, "codeSystemName": self.system, "originalText": self.meaning},
        )


def _dcm(code: str, meaning: str) -> Code:
    return Code(code, "DCM", meaning)


INSTANCES_TRANSFERRED = _dcm("110104", "DICOM Instances Transferred")
INSTANCES_ACCESSED = _dcm("110103", "DICOM Instances Accessed")
QUERY = _dcm("110112", "Query")
PATIENT_RECORD = _dcm("110110", "Patient Record")
AUDIT_LOG_USED = _dcm("110101", "Audit Log Used")
SECURITY_ALERT = _dcm("110113", "Security Alert")
USER_AUTHENTICATION = _dcm("110114", "User Authentication")
LOGIN = _dcm("110122", "Login")
RESTRICTED_FUNCTION = _dcm("110132", "Use of Restricted Function")
SOURCE = _dcm("110153", "Source Role ID")
DESTINATION = _dcm("110152", "Destination Role ID")
STUDY_UID = _dcm("110180", "Study Instance UID")
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
URI = Code("12", "RFC-3881", "URI")

# action → (event, EventActionCode: C create, R read, U update, D delete, E execute)
EVENTS: dict[str, tuple[Code, str]] = {
    "upload": (INSTANCES_TRANSFERRED, "C"),
    "download": (INSTANCES_TRANSFERRED, "R"),
    "retrieve": (INSTANCES_TRANSFERRED, "R"),  # WADO-RS
    "preview": (INSTANCES_ACCESSED, "R"),
    "query": (QUERY, "E"),
    "delete": (INSTANCES_ACCESSED, "D"),
    "convert": (INSTANCES_ACCESSED, "U"),
    "patient_read": (PATIENT_RECORD, "R"),
    "patient_change": (PATIENT_RECORD, "U"),
    "audit_read": (AUDIT_LOG_USED, "R"),
}
DEFAULT_EVENT = (INSTANCES_ACCESSED, "R")
# PS3.15 A.5.1: 0 success, 4 minor failure (refused), 8 serious failure (the service failed).
OUTCOMES = {"success": "0", "denied": "4", "failure": "4"}


@dataclass(frozen=True)
class AuditSource:
    """Who writes the messages (AuditSourceIdentification) and from where."""

    source_id: str = "dicomgate"
    enterprise_site_id: str | None = None
    host: str = ""


def event_of(entry: AuditEntry) -> tuple[Code, str, Code | None]:
    """(EventID, EventActionCode, EventTypeCode) of an entry."""
    if entry.status_code == 401:
        return USER_AUTHENTICATION, "E", LOGIN
    if entry.status_code == 403:
        return SECURITY_ALERT, "E", RESTRICTED_FUNCTION
    event, action = EVENTS.get(entry.action, DEFAULT_EVENT)
    if entry.action == "patient_change":
        action = {"DELETE": "D", "POST": "C"}.get(entry.method, "U")
    return event, action, None


def _outcome(entry: AuditEntry) -> str:
    return "8" if entry.status_code >= 500 else OUTCOMES.get(entry.outcome, "4")


def _values(entry: AuditEntry, key: str) -> list[str]:
    values = entry.resource.get(key) or []
    return [str(v) for v in values] if isinstance(values, list) else []


def audit_message(entry: AuditEntry, source: AuditSource) -> bytes:
    """The DICOM Audit Message (PS3.15 A.5.1 schema) of one entry, as UTF-8 XML."""
    event, action, event_type = event_of(entry)
    root = ET.Element("AuditMessage")
    identification = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": action,
            "EventDateTime": entry.at.isoformat(),
            "EventOutcomeIndicator": _outcome(entry),
        },
    )
    event.element(identification, "EventID")
    if event_type is not None:
        event_type.element(identification, "EventTypeCode")
    if entry.outcome != "success":
        description = ET.SubElement(identification, "EventOutcomeDescription")
        description.text = f"HTTP {entry.status_code} ({entry.outcome})"
    uploading = entry.action == "upload"
    requestor = ET.SubElement(
        root,
        "ActiveParticipant",
        {
            "UserID": entry.actor,
            "UserIsRequestor": "true",
            "NetworkAccessPointID": entry.client or "unknown",
            "NetworkAccessPointTypeCode": "2",  # an IP address
        },
    )
    if event is INSTANCES_TRANSFERRED:
        (SOURCE if uploading else DESTINATION).element(requestor, "RoleIDCode")
    service = ET.SubElement(
        root,
        "ActiveParticipant",
        {
            "UserID": f"{entry.method} {entry.route}",
            "AlternativeUserID": str(os.getpid()),
            "UserIsRequestor": "false",
            "NetworkAccessPointID": source.host or socket.gethostname(),
            "NetworkAccessPointTypeCode": "1",  # a host name
        },
    )
    if event is INSTANCES_TRANSFERRED:
        (DESTINATION if uploading else SOURCE).element(service, "RoleIDCode")
    attributes = {"AuditSourceID": source.source_id}
    if source.enterprise_site_id:
        attributes["AuditEnterpriseSiteID"] = source.enterprise_site_id
    audit_source = ET.SubElement(root, "AuditSourceIdentification", attributes)
    ET.SubElement(audit_source, "AuditSourceTypeCode", {"csd-code": "4"})  # application server
    for patient_id in _values(entry, "patient_ids"):
        patient = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": patient_id,
                "ParticipantObjectTypeCode": "1",  # person
                "ParticipantObjectTypeCodeRole": "1",  # patient
            },
        )
        PATIENT_NUMBER.element(patient, "ParticipantObjectIDTypeCode")
    for study_uid in _values(entry, "study_instance_uids"):
        study = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": study_uid,
                "ParticipantObjectTypeCode": "2",  # system object
                "ParticipantObjectTypeCodeRole": "3",  # report
            },
        )
        STUDY_UID.element(study, "ParticipantObjectIDTypeCode")
    if event is QUERY:
        query = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": entry.route,
                "ParticipantObjectTypeCode": "2",
                "ParticipantObjectTypeCodeRole": "24",  # query
            },
        )
        URI.element(query, "ParticipantObjectIDTypeCode")
        asked = {k: v for k, v in entry.resource.items() if isinstance(v, str)}
        text = ET.SubElement(query, "ParticipantObjectQuery")
        text.text = base64.b64encode(urlencode(sorted(asked.items())).encode()).decode()
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml
