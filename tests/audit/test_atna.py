"""IHE ATNA export: every audit event also reaches the hospital's audit repository as a DICOM
Audit Message (PS3.15 A.5) over syslog (RFC 5424, RFC 6587 octet counting; TLS with mutual
authentication), from a syslog receiver the test starts itself, whose XML the test parses."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from pydantic import SecretStr
from pydicom.uid import generate_uid

from dicomgate.app import create_app
from dicomgate.settings import Settings
from tests.builders import to_bytes
from tests.identity.helpers import UPLOAD, image, part
from tests.orthanc_process import OrthancProcess, free_port

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SyslogMessage:
    """One RFC 5424 message as received."""

    priority: int
    timestamp: datetime.datetime
    app_name: str
    msgid: str
    xml: ET.Element

    def find(self, path: str) -> ET.Element:
        found = self.xml.find(path)
        assert found is not None, f"{path} not in {ET.tostring(self.xml)!r}"
        return found

    def event_id(self) -> str:
        return self.find("EventIdentification/EventID").attrib["csd-code"]

    def objects(self) -> list[tuple[str, str]]:
        """(ParticipantObjectIDTypeCode, ParticipantObjectID) of every participant object."""
        return [
            (
                o.find("ParticipantObjectIDTypeCode").attrib["csd-code"],
                o.attrib["ParticipantObjectID"],
            )  # type: ignore[union-attr]
            for o in self.xml.findall("ParticipantObjectIdentification")
        ]


def parse(frame_body: bytes) -> SyslogMessage:
    pri_version, timestamp, _host, app, _procid, msgid, structured, msg = frame_body.split(b" ", 7)
    assert pri_version.startswith(b"<") and pri_version.endswith(b">1"), pri_version
    assert structured == b"-" and msg.startswith(BOM)
    return SyslogMessage(
        priority=int(pri_version[1:-2]),
        timestamp=datetime.datetime.fromisoformat(timestamp.decode()),
        app_name=app.decode(),
        msgid=msgid.decode(),
        xml=ET.fromstring(msg[len(BOM) :]),
    )


class SyslogReceiver:
    """A syslog collector on a loopback port: TCP (or TLS), octet-counted frames (RFC 6587)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()

    async def start(self, port: int = 0, *, tls: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._read, "127.0.0.1", port, ssl=tls)
        return int(self.server.sockets[0].getsockname()[1])

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = int((await reader.readuntil(b" "))[:-1])
                frame = await reader.readexactly(length)
                async with self._arrived:
                    self.frames.append(frame)
                    self._arrived.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    async def messages(self, count: int) -> list[SyslogMessage]:
        """The first ``count`` messages, once that many have arrived (a minute at most)."""
        async with asyncio.timeout(60), self._arrived:
            await self._arrived.wait_for(lambda: len(self.frames) >= count)
        return [parse(f) for f in self.frames[:count]]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@asynccontextmanager
async def receiver(
    port: int = 0, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[SyslogReceiver, int]]:
    collector = SyslogReceiver()
    bound = await collector.start(port, tls=tls)
    try:
        yield collector, bound
    finally:
        await collector.stop()


@asynccontextmanager
async def app_on(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://dicomgate.test") as c:
            yield application, c


async def test_each_event_is_a_dicom_audit_message_over_tcp(
    settings: Settings, clean_orthanc: OrthancProcess
) -> None:
    async with receiver() as (collector, port):
        atna = settings.model_copy(
            update={
                "atna_syslog_url": f"tcp://127.0.0.1:{port}",
                "atna_source_id": "dicomgate-test",
                "atna_enterprise_site_id": "General Hospital",
                "workers": 1,
            }
        )
        ids = {"sop_uid": generate_uid(), "study_uid": generate_uid()}
        async with app_on(atna) as (_app, client):
            stored = await client.post(UPLOAD, files=[part(to_bytes(image(**ids)))])
            assert stored.status_code == 201
            instance_id = stored.json()["orthanc_response"]["ID"]
            assert (
                await client.get(f"/api/orthanc/instances/{instance_id}/file/")
            ).status_code == 200
            assert (
                await client.get("/api/ris/patients/", params={"search": "x"})
            ).status_code == 200
            study = stored.json()["orthanc_response"]["ParentStudy"]
            assert (
                await client.get("/api/orthanc/series/", params={"study_id": study})
            ).status_code == 200
            other = image(**ids, BodyPartExamined="KNEE")  # same UID, other content: refused
            assert (await client.post(UPLOAD, files=[part(to_bytes(other))])).status_code == 409
            upload, download, patients, query, refused = await collector.messages(5)

    assert (upload.app_name, upload.msgid) == ("dicomgate", "IHE+RFC-3881")
    assert upload.priority == 10 * 8 + 5  # security/authorization, notice
    assert upload.timestamp.utcoffset() == datetime.timedelta(0)
    assert upload.event_id() == "110104"  # DICOM Instances Transferred
    identification = upload.find("EventIdentification")
    assert identification.attrib["EventActionCode"] == "C"
    assert identification.attrib["EventOutcomeIndicator"] == "0"
    requestor, service = upload.xml.findall("ActiveParticipant")
    assert requestor.attrib["UserIsRequestor"] == "true"
    assert requestor.attrib["NetworkAccessPointID"] == "127.0.0.1"
    assert requestor.find("RoleIDCode").attrib["csd-code"] == "110153"  # type: ignore[union-attr]
    assert service.attrib["UserID"] == "POST /api/ris/upload/dicom/"
    assert service.find("RoleIDCode").attrib["csd-code"] == "110152"  # type: ignore[union-attr]
    source = upload.find("AuditSourceIdentification")
    assert source.attrib == {
        "AuditSourceID": "dicomgate-test",
        "AuditEnterpriseSiteID": "General Hospital",
    }
    assert upload.objects() == [("2", "FILE-ID"), ("110180", ids["study_uid"])]

    assert (
        download.event_id(),
        download.find("EventIdentification").attrib["EventActionCode"],
    ) == (
        "110104",
        "R",
    )
    assert download.objects() == [("2", "FILE-ID"), ("110180", ids["study_uid"])]
    assert patients.event_id() == "110110"  # Patient Record (the patient cache was read)
    assert query.event_id() == "110112"
    [uri] = [
        o
        for o in query.xml.findall("ParticipantObjectIdentification")
        if o.attrib["ParticipantObjectTypeCodeRole"] == "24"
    ]
    assert uri.attrib["ParticipantObjectID"] == "/api/orthanc/series/"
    asked = base64.b64decode(uri.find("ParticipantObjectQuery").text or "").decode()  # type: ignore[union-attr]
    assert asked == f"study_id={study}"
    assert refused.event_id() == "110104"
    assert refused.find("EventIdentification").attrib["EventOutcomeIndicator"] == "4"
    assert refused.find("EventIdentification/EventOutcomeDescription").text == "HTTP 409 (failure)"
    assert refused.priority == 10 * 8 + 4  # warning


async def test_a_repository_that_is_down_loses_nothing_and_blocks_nothing(
    settings: Settings, clean_orthanc: OrthancProcess
) -> None:
    port = free_port()  # nothing listens there yet
    atna = settings.model_copy(update={"atna_syslog_url": f"tcp://127.0.0.1:{port}", "workers": 1})
    async with app_on(atna) as (_app, client):
        for _ in range(3):
            assert (await client.get("/api/ris/patients/")).status_code == 200
        metrics_text = (await client.get("/metrics")).text
        assert 'dicomgate_atna_messages_total{outcome="retried"}' in metrics_text
        async with receiver(port) as (collector, _port):
            delivered = await collector.messages(3)
    assert [m.event_id() for m in delivered] == ["110110"] * 3


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_with_mutual_authentication_and_security_events(
    settings: Settings, clean_orthanc: OrthancProcess, tmp_path: Path
) -> None:
    server_cert, server_key = _self_signed(tmp_path, "repository")
    client_cert, client_key = _self_signed(tmp_path, "dicomgate")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(server_cert, server_key)
    tls.verify_mode = ssl.CERT_REQUIRED  # the repository only takes known nodes (ATNA)
    tls.load_verify_locations(cafile=client_cert)
    async with receiver(tls=tls) as (collector, port):
        atna = settings.model_copy(
            update={
                "atna_syslog_url": f"tls://127.0.0.1:{port}",
                "atna_tls_ca_file": server_cert,
                "atna_tls_cert_file": client_cert,
                "atna_tls_key_file": client_key,
                "auth_enabled": True,
                "jwt_secret": SecretStr("a-secret-that-is-long-enough-for-hs256-0123"),
                "jwt_audience": "dicomgate",
                "workers": 1,
            }
        )
        async with app_on(atna) as (_app, client):
            assert (await client.get("/api/ris/patients/")).status_code == 401
            (login,) = await collector.messages(1)
    assert login.event_id() == "110114"  # User Authentication
    assert login.find("EventIdentification/EventTypeCode").attrib["csd-code"] == "110122"
    assert login.find("EventIdentification").attrib["EventOutcomeIndicator"] == "4"
    assert login.find("ActiveParticipant").attrib["UserID"] == "anonymous"


def test_a_wrong_url_stops_the_start(settings: Settings) -> None:
    from dicomgate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="tcp://host"):
        create_app(settings.model_copy(update={"atna_syslog_url": "udp://127.0.0.1:514"}))
