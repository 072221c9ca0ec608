"""Unit tests of the pure dataset edits and checks (no server)."""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomgate.dicom.demographics import Demographics
from dicomgate.dicom.preamble import preamble_is_zero, zero_preamble
from dicomgate.dicom.reading import read_part10
from dicomgate.dicom.stamp import coerce_attributes, patient_changes
from dicomgate.dicom.unify import SeriesAssignment, series_label, study_changes
from dicomgate.errors import InvalidDicom, NotDicom
from dicomgate.ingest.zipfiles import UnsafeArchive, expand_zip, unsafe_name_reason
from tests.builders import from_bytes, make_dataset, to_bytes

NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
JANE = Demographics("P-77", "Roe", "Jane", datetime.date(1970, 1, 31), "female")


class TestCoerceAttributes:
    def test_records_previous_values_per_ps3_3_c_12_1_1_9(self) -> None:
        ds = make_dataset(patient_id="OLD-1", patient_name="Old^Name", PatientSex="M")
        changed = coerce_attributes(ds, patient_changes(JANE), now=NOW)

        assert changed == ["PatientID", "PatientName", "PatientBirthDate", "PatientSex"]
        assert (ds.PatientID, str(ds.PatientName)) == ("P-77", "Roe^Jane")
        assert (ds.PatientBirthDate, ds.PatientSex) == ("19700131", "F")
        [item] = ds.OriginalAttributesSequence
        [old] = item.ModifiedAttributesSequence
        assert old.PatientID == "OLD-1"
        assert str(old.PatientName) == "Old^Name"
        assert old.PatientSex == "M"
        assert "PatientBirthDate" in old and old.PatientBirthDate in (None, "")  # was absent
        assert item.AttributeModificationDateTime == "20240506070809.123456+0000"
        assert item.ModifyingSystem == "dicomgate"
        assert item.ReasonForTheAttributeModification == "COERCE"

    def test_nothing_changed_adds_no_history(self) -> None:
        ds = make_dataset(
            patient_id="P-77", patient_name="Roe^Jane", PatientBirthDate="19700131", PatientSex="F"
        )
        assert coerce_attributes(ds, patient_changes(JANE), now=NOW) == []
        assert "OriginalAttributesSequence" not in ds

    def test_appends_to_existing_history(self) -> None:
        ds = make_dataset(patient_id="A")
        earlier = Dataset()
        earlier.ModifyingSystem = "elsewhere"
        ds.OriginalAttributesSequence = Sequence([earlier])
        coerce_attributes(ds, {"PatientID": "B"}, now=NOW)
        systems = [i.ModifyingSystem for i in ds.OriginalAttributesSequence]
        assert systems == ["elsewhere", "dicomgate"]

    def test_unknown_sex_and_birth_date_become_empty(self) -> None:
        unknown = Demographics("P-9", "Doe", "John", None, "unknown")
        ds = make_dataset(PatientSex="M", PatientBirthDate="19500101")
        coerce_attributes(ds, patient_changes(unknown), now=NOW)
        assert (ds.PatientSex, ds.PatientBirthDate) == ("", "")
        [old] = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence
        assert (old.PatientSex, old.PatientBirthDate) == ("M", "19500101")


class TestUnify:
    def test_study_changes_keep_dates_and_sop_uid(self) -> None:
        ds = make_dataset(StudyTime="101010")
        assignment = SeriesAssignment("1.2.3", "Chest", "1.2.3.4", 2, "axial")
        changes = study_changes(ds, assignment, now=NOW)
        assert changes == {
            "StudyInstanceUID": "1.2.3",
            "SeriesInstanceUID": "1.2.3.4",
            "SeriesNumber": 2,
            "StudyDescription": "Chest",
            "SeriesDescription": "axial",
        }  # StudyDate 20240101 and StudyTime present: kept; SOP Instance UID never changed

    def test_missing_study_date_time_set_to_now(self) -> None:
        ds = make_dataset()
        del ds.StudyDate
        changes = study_changes(ds, SeriesAssignment("1.2", None, "1.2.1", 1, None), now=NOW)
        assert (changes["StudyDate"], changes["StudyTime"]) == ("20240506", "070809")

    @pytest.mark.parametrize(
        ("path", "label"),
        [
            ("study/CT axial/", "CT axial"),
            ("a\\b\\c", "c"),
            ("../../etc", "etc"),
            ("", ""),
            ("/", ""),
            ("x/..", "x"),
        ],
    )
    def test_series_label_is_last_folder(self, path: str, label: str) -> None:
        assert series_label(path) == label


class TestReadPart10:
    def test_valid_file_parses(self) -> None:
        ds = read_part10(to_bytes(make_dataset(sop_uid="1.2.3.4")))
        assert ds.SOPInstanceUID == "1.2.3.4"

    @pytest.mark.parametrize(
        ("data", "message"),
        [(b"", "The file is empty"), (b"hello world" * 20, "The file is not DICOM")],
    )
    def test_not_dicom(self, data: bytes, message: str) -> None:
        with pytest.raises(NotDicom, match=message):
            read_part10(data)

    def test_truncated_pixel_data(self) -> None:
        data = to_bytes(make_dataset(rows=16, columns=16))
        with pytest.raises(InvalidDicom, match="truncated"):
            read_part10(data[:-100])

    @pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SOPClassUID"])
    def test_missing_sop_identity(self, keyword: str) -> None:
        ds = make_dataset()
        delattr(ds, keyword)
        with pytest.raises(InvalidDicom, match=f"no {keyword}"):
            read_part10(to_bytes(ds))


def test_zero_preamble() -> None:
    ds = from_bytes(to_bytes(make_dataset()))
    ds.preamble = b"MZ" + b"\x90" * 126
    assert not preamble_is_zero(to_bytes(ds))
    zero_preamble(ds)
    assert preamble_is_zero(to_bytes(ds))


class TestZip:
    @pytest.mark.parametrize(
        "name", ["../evil.dcm", "a/../../b.dcm", "/etc/passwd", "C:/x.dcm", "..\\win.dcm"]
    )
    def test_unsafe_names_refused(self, name: str) -> None:
        assert unsafe_name_reason(name) is not None

    def test_names_are_labels_not_paths(self, tmp_path: Path) -> None:
        archive = tmp_path / "up.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("../escape.dcm", b"x")
            zf.writestr("ct/one.dcm", b"one")
        out = expand_zip(
            archive, tmp_path / "out", max_entries=10, max_entry_bytes=100, max_total_bytes=1000
        )
        assert [e.name for e in out.entries] == ["ct/one.dcm"]
        assert out.entries[0].folder == "ct"
        assert out.entries[0].path.parent == tmp_path / "out"
        assert out.refused == [("../escape.dcm", "Refused: '..' in the archive path")]
        assert not (tmp_path / "escape.dcm").exists()
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00001.entry"]

    def test_bomb_stops_at_ratio(self, tmp_path: Path) -> None:
        archive = tmp_path / "bomb.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("bomb.dcm", b"\0" * (20 * 1024 * 1024))
        with pytest.raises(UnsafeArchive, match="zip bomb"):
            expand_zip(
                archive,
                tmp_path / "out",
                max_entries=10,
                max_entry_bytes=100 * 1024 * 1024,
                max_total_bytes=100 * 1024 * 1024,
            )
        assert list((tmp_path / "out").iterdir()) == []  # the partial output is removed

    def test_lying_sizes_and_entry_count(self, tmp_path: Path) -> None:
        archive = tmp_path / "many.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for i in range(5):
                zf.writestr(f"f{i}.dcm", b"x")
        with pytest.raises(UnsafeArchive, match="at most 4"):
            expand_zip(
                archive, tmp_path / "out", max_entries=4, max_entry_bytes=10, max_total_bytes=100
            )

    def test_not_a_zip(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.zip"
        bad.write_bytes(b"PK\x03\x04 broken" + io.BytesIO(b"0" * 50).read())
        with pytest.raises(UnsafeArchive, match="cannot be read"):
            expand_zip(
                bad, tmp_path / "out", max_entries=4, max_entry_bytes=10, max_total_bytes=100
            )
