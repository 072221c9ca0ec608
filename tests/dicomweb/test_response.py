"""The STOW-RS answer (PS3.18 Annex I, DICOM JSON) and media-type rules, as pure functions."""

from __future__ import annotations

import datetime

import pytest
from pydicom.dataset import Dataset

from dicomgate.dicomweb.schemas import FailureReason, PartStatus, StoreReport, WarningReason
from dicomgate.dicomweb.service import (
    check_accept,
    check_store_media_type,
    check_study_uid,
    failure_reason,
)
from dicomgate.errors import (
    BadRequest,
    ImageTooLarge,
    InvalidDicom,
    NotAcceptable,
    NotDicom,
    OrthancRejectedFile,
    StudyMismatch,
    UnsupportedMediaType,
    WorkerTimeout,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
STORED = PartStatus(sop_class_uid=CT, sop_instance_uid="1.2.3.1")
FAILED = PartStatus(
    sop_class_uid=CT, sop_instance_uid="1.2.3.2", failure=FailureReason.STUDY_MISMATCH
)
UNREADABLE = PartStatus(failure=FailureReason.CANNOT_UNDERSTAND)


class TestStatusCode:
    @pytest.mark.parametrize(
        ("parts", "status"),
        [
            ([STORED, STORED], 200),
            ([STORED, FAILED], 202),
            ([STORED, PartStatus(sop_instance_uid="9", warning=WarningReason.COERCION)], 202),
            ([FAILED, UNREADABLE], 409),
        ],
    )
    def test_table_10_5_3_1(self, parts: list[PartStatus], status: int) -> None:
        assert StoreReport(parts).status_code == status


class TestDicomJson:
    def test_exact_module_for_a_mixed_request(self) -> None:
        body = StoreReport([STORED, FAILED, UNREADABLE]).to_dicom_json()
        assert body == {
            "00081190": {"vr": "UR"},
            "00081198": {
                "vr": "SQ",
                "Value": [
                    {
                        "00081150": {"vr": "UI", "Value": [CT]},
                        "00081155": {"vr": "UI", "Value": ["1.2.3.2"]},
                        "00081197": {"vr": "US", "Value": [0xC409]},
                    },
                    {
                        "00081150": {"vr": "UI"},
                        "00081155": {"vr": "UI"},
                        "00081197": {"vr": "US", "Value": [0xC000]},
                    },
                ],
            },
            "00081199": {
                "vr": "SQ",
                "Value": [
                    {
                        "00081150": {"vr": "UI", "Value": [CT]},
                        "00081155": {"vr": "UI", "Value": ["1.2.3.1"]},
                        "00081190": {"vr": "UR"},
                    }
                ],
            },
        }

    def test_retrieve_urls_name_the_study_and_each_instance(self) -> None:
        part = PartStatus(
            sop_class_uid=CT,
            sop_instance_uid="1.2.3.1",
            study_instance_uid="1.2",
            series_instance_uid="1.2.3",
        )
        other_study = PartStatus(
            sop_class_uid=CT,
            sop_instance_uid="1.9.3.1",
            study_instance_uid="1.9",
            series_instance_uid="1.9.3",
        )
        base = "https://pacs.test/dicomweb"

        one = Dataset.from_json(StoreReport([part, FAILED], service_url=base).to_dicom_json())
        two = Dataset.from_json(StoreReport([part, other_study], service_url=base).to_dicom_json())

        assert one.RetrieveURL == f"{base}/studies/1.2"
        assert one.ReferencedSOPSequence[0].RetrieveURL == (
            f"{base}/studies/1.2/series/1.2.3/instances/1.2.3.1"
        )
        assert two.RetrieveURL == ""  # Type 2: two studies, no one study to name
        assert [i.RetrieveURL for i in two.ReferencedSOPSequence] == [
            f"{base}/studies/1.2/series/1.2.3/instances/1.2.3.1",
            f"{base}/studies/1.9/series/1.9.3/instances/1.9.3.1",
        ]

    def test_sequences_are_left_out_when_empty(self) -> None:
        assert set(StoreReport([STORED]).to_dicom_json()) == {"00081190", "00081199"}
        assert set(StoreReport([FAILED]).to_dicom_json()) == {"00081190", "00081198"}

    def test_lossy_coercion_has_a_warning_and_the_uid_sent(self) -> None:
        when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
        part = PartStatus(
            sop_class_uid=CT,
            sop_instance_uid="2.25.99",
            warning=WarningReason.COERCION,
            original_sop_instance_uid="1.2.3.1",
            modified_at=when,
        )
        ds = Dataset.from_json(StoreReport([part]).to_dicom_json())
        [item] = ds.ReferencedSOPSequence
        assert item.ReferencedSOPInstanceUID == "2.25.99"
        assert item.WarningReason == 0xB000
        [original] = item.OriginalAttributesSequence
        assert original.ModifyingSystem == "dicomgate"
        assert original.ReasonForTheAttributeModification == "COERCE"
        assert original.AttributeModificationDateTime == "20240506070809.000000+0000"
        assert original.ModifiedAttributesSequence[0].SOPInstanceUID == "1.2.3.1"


class TestFailureReason:
    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (StudyMismatch(), 0xC409),
            (NotDicom(), 0xC000),
            (InvalidDicom(), 0xC000),
            (ImageTooLarge(), 0xA700),
            (OrthancRejectedFile(), 0x0110),
            (WorkerTimeout(), 0x0110),
        ],
    )
    def test_table_i_2_2(self, error: Exception, reason: int) -> None:
        assert failure_reason(error) == reason  # type: ignore[arg-type]


class TestMediaType:
    @pytest.mark.parametrize(
        "content_type",
        [
            'multipart/related; type="application/dicom"; boundary=x',
            "multipart/related; type=application/dicom; boundary=x",
            'Multipart/Related; Type="Application/DICOM"; boundary="x"',
        ],
    )
    def test_accepted(self, content_type: str) -> None:
        check_store_media_type(content_type)

    @pytest.mark.parametrize(
        "content_type",
        [None, "", "application/dicom+xml", "text/plain", "multipart/related; boundary=x"],
    )
    def test_refused(self, content_type: str | None) -> None:
        with pytest.raises(UnsupportedMediaType):
            check_store_media_type(content_type)

    @pytest.mark.parametrize("uid", ["1.2.840.1", "2.25.1234567890"])
    def test_study_uid(self, uid: str) -> None:
        assert check_study_uid(uid) == uid

    @pytest.mark.parametrize("uid", ["abc", "1..2", "1.2.", "1" * 65, ""])
    def test_not_a_study_uid(self, uid: str) -> None:
        with pytest.raises(BadRequest):
            check_study_uid(uid)


class TestAccept:
    @pytest.mark.parametrize(
        "accept",
        [
            None,
            "",
            "*/*",
            "application/dicom+json",
            "application/json",
            "application/dicom+xml, application/dicom+json; q=0.5",
            "text/html, application/*; q=0.1",
        ],
    )
    def test_allows_the_json_answer(self, accept: str | None) -> None:
        check_accept(accept)

    @pytest.mark.parametrize(
        "accept", ["application/dicom+xml", "text/html", "application/dicom+json; q=0"]
    )
    def test_refuses_what_rules_it_out(self, accept: str) -> None:
        with pytest.raises(NotAcceptable, match="application/dicom\\+xml is not supported"):
            check_accept(accept)
