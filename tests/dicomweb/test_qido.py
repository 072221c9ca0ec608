"""QIDO-RS (PS3.18 §10.6) with dicomweb-client against dicomgate and a real Orthanc.

The corpus: patient PAT-A (Doe^Jane) has study A1 (2024-01-10, ACC-A1: three CT slices and an
RGB secondary capture, OT) and A2 (2023-05-05, acc-a2: a ten-frame MR); patient pat-b
(DOE^JOHN) has B1 (2024-03-01, ACC-B1, one CT); patient PAT-C (Roe^Richard) has one study of
six instances stored straight into Orthanc.
"""

from __future__ import annotations

from typing import Any

import pytest
from dicomweb_client import DICOMwebClient

from tests.dicomweb.corpus import Corpus
from tests.dicomweb.reads import ReadServer, get


def value(result: dict[str, Any], tag: str) -> Any:
    found = result.get(tag, {}).get("Value")
    return None if found is None else found[0] if len(found) == 1 else found


def studies(client: DICOMwebClient, **filters: Any) -> set[str]:
    results = client.search_for_studies(search_filters=filters)
    return {value(r, "0020000D") for r in results}


@pytest.fixture(scope="module")
def uids(corpus: Corpus) -> dict[str, str]:
    return {
        "A1": corpus["ct1"].study,
        "A2": corpus["mr"].study,
        "B1": corpus["b"].study,
        "C1": corpus["native"].study,
    }


class TestStudyMatching:
    def test_patient_id_is_exact(self, reader: DICOMwebClient, uids: dict[str, str]) -> None:
        assert studies(reader, PatientID="PAT-A") == {uids["A1"], uids["A2"]}
        assert studies(reader, PatientID="pat-a") == set()

    def test_person_names_match_case_insensitively_with_wildcards(
        self, reader: DICOMwebClient, uids: dict[str, str]
    ) -> None:
        assert studies(reader, PatientName="doe*") == {uids["A1"], uids["A2"], uids["B1"]}
        assert studies(reader, PatientName="DOE^JA?E") == {uids["A1"], uids["A2"]}
        assert studies(reader, PatientName="doe") == set()

    def test_fuzzy_matching_makes_names_prefixes(
        self, reader: DICOMwebClient, uids: dict[str, str]
    ) -> None:
        results = reader.search_for_studies(
            search_filters={"PatientName": "doe"}, fuzzymatching=True
        )

        assert {value(r, "0020000D") for r in results} == {uids["A1"], uids["A2"], uids["B1"]}

    def test_other_keys_stay_case_sensitive_beside_a_name(
        self, reader: DICOMwebClient, uids: dict[str, str]
    ) -> None:
        # Orthanc matches a whole query case-insensitively once a name is in it: dicomgate
        # checks the other keys again, so another patient's ID in the wrong case finds nothing.
        assert studies(reader, PatientName="doe*", PatientID="PAT-B") == set()
        assert studies(reader, PatientName="doe*", PatientID="pat-b") == {uids["B1"]}
        assert studies(reader, PatientName="doe*", AccessionNumber="ACC-A2") == set()

    def test_date_ranges(self, reader: DICOMwebClient, uids: dict[str, str]) -> None:
        assert studies(reader, StudyDate="20240101-20241231") == {uids["A1"], uids["B1"]}
        assert studies(reader, StudyDate="20240201-") == {uids["B1"]}
        assert uids["A2"] in studies(reader, StudyDate="-20231231")
        assert uids["A1"] not in studies(reader, StudyDate="-20231231")
        assert studies(reader, StudyDate="20240110", StudyTime="100000-110000") == {uids["A1"]}

    def test_accession_modalities_and_uid_lists(
        self, reader: DICOMwebClient, uids: dict[str, str]
    ) -> None:
        assert studies(reader, AccessionNumber="acc-a2") == {uids["A2"]}
        assert studies(reader, AccessionNumber="ACC-A*") == {uids["A1"]}
        assert studies(reader, ModalitiesInStudy="OT", PatientID="PAT-A") == {uids["A1"]}
        both = f"{uids['A1']},{uids['B1']}"
        assert studies(reader, StudyInstanceUID=both) == {uids["A1"], uids["B1"]}
        assert studies(reader, **{"0020000D": uids["A2"]}) == {uids["A2"]}
        assert studies(reader, PatientID="") >= {uids["A1"], uids["A2"], uids["B1"], uids["C1"]}


class TestStudyResults:
    def test_attributes_and_computed_counts(
        self, reader: DICOMwebClient, read_server: ReadServer, uids: dict[str, str]
    ) -> None:
        [study] = reader.search_for_studies(search_filters={"StudyInstanceUID": uids["A1"]})

        assert value(study, "00100020") == "PAT-A"
        assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
        assert (value(study, "00080020"), value(study, "00080030")) == ("20240110", "101500")
        assert value(study, "00080050") == "ACC-A1"
        assert value(study, "00081030") == "CT CHEST"
        assert value(study, "00080090") == {"Alphabetic": "House^Greg"}
        assert study["00080061"] == {"vr": "CS", "Value": ["CT", "OT"]}
        assert study["00201206"] == {"vr": "IS", "Value": [2]}
        assert study["00201208"] == {"vr": "IS", "Value": [4]}
        assert value(study, "00080056") == "ONLINE"
        assert value(study, "00081190") == f"{read_server.dicomweb}/studies/{uids['A1']}"

    def test_limit_offset_and_the_warning_for_more(
        self, read_server: ReadServer, uids: dict[str, str]
    ) -> None:
        url = f"{read_server.dicomweb}/studies?PatientID=PAT-A"
        first = get(read_server, url + "&limit=1")
        second = get(read_server, url + "&limit=1&offset=1")
        third = get(read_server, url + "&limit=1&offset=2")

        assert first.headers["Warning"].startswith("299 ")
        assert "Warning" not in second.headers
        got = {value(r, "0020000D") for r in first.json() + second.json()}
        assert got == {uids["A1"], uids["A2"]}
        assert third.json() == []

    def test_includefield(self, reader: DICOMwebClient, uids: dict[str, str]) -> None:
        [default] = reader.search_for_studies(search_filters={"StudyInstanceUID": uids["A1"]})
        [extra] = reader.search_for_studies(
            search_filters={"StudyInstanceUID": uids["A1"]}, fields=["InstitutionName"]
        )
        [everything] = reader.search_for_studies(
            search_filters={"StudyInstanceUID": uids["A1"]}, fields=["all"]
        )

        assert "00080080" not in default
        assert value(extra, "00080080") == "General Hospital"
        assert value(everything, "00080080") == "General Hospital"
        assert {"00100040", "00100030", "00201208"} <= set(everything)


class TestSeriesAndInstances:
    def test_series_of_a_study(
        self, reader: DICOMwebClient, corpus: Corpus, uids: dict[str, str]
    ) -> None:
        found = reader.search_for_series(uids["A1"])
        ct_only = reader.search_for_series(uids["A1"], search_filters={"Modality": "CT"})

        counts = {value(s, "0020000E"): value(s, "00201209") for s in found}
        assert counts == {corpus["ct1"].series: 3, corpus["rgb"].series: 1}
        assert [value(s, "0020000E") for s in ct_only] == [corpus["ct1"].series]
        assert value(ct_only[0], "00081190") == (
            f"{reader.base_url}/studies/{uids['A1']}/series/{corpus['ct1'].series}"
        )

    def test_all_series_carry_their_study(self, reader: DICOMwebClient, corpus: Corpus) -> None:
        found = reader.search_for_series(search_filters={"PatientID": "PAT-A"})

        assert {value(s, "0020000E") for s in found} == {
            corpus[n].series for n in ("ct1", "rgb", "mr")
        }
        for series in found:
            assert value(series, "00100020") == "PAT-A"
            assert value(series, "0020000D") in (corpus["ct1"].study, corpus["mr"].study)

    def test_instances_of_a_series_have_the_unindexed_attributes(
        self, reader: DICOMwebClient, corpus: Corpus
    ) -> None:
        ct = corpus["ct1"]
        found = reader.search_for_instances(ct.study, ct.series)

        assert {value(i, "00080018") for i in found} == {
            corpus[n].sop for n in ("ct1", "ct2", "ct3")
        }
        [first] = [i for i in found if value(i, "00080018") == ct.sop]
        assert value(first, "00080016") == str(ct.dataset.SOPClassUID)
        assert (value(first, "00280010"), value(first, "00280011")) == (32, 40)
        assert value(first, "00280100") == 16
        assert value(first, "00200013") == 1
        assert value(first, "00081190") == ct.path(reader.base_url)

    def test_instance_search_everywhere(self, reader: DICOMwebClient, corpus: Corpus) -> None:
        mr = corpus["mr"]
        [found] = reader.search_for_instances(search_filters={"SOPInstanceUID": mr.sop})
        in_study = reader.search_for_instances(corpus["ct1"].study)
        photometric = reader.search_for_instances(
            mr.study, mr.series, fields=["PhotometricInterpretation"]
        )

        assert value(found, "0020000D") == mr.study and value(found, "0020000E") == mr.series
        assert value(found, "00280008") == 10
        assert value(found, "00100020") == "PAT-A"  # study attributes: the search spans studies
        assert {value(i, "00080018") for i in in_study} == {
            corpus[n].sop for n in ("ct1", "ct2", "ct3", "rgb")
        }
        assert value(photometric[0], "00280004") == "MONOCHROME2"


class TestRefusals:
    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("Foo=1", "'Foo' is neither a DICOM keyword nor a tag (8 hex digits)"),
            ("Modality=CT",
             "Modality is a series-level attribute: it cannot be matched in a study search"),
            ("StudyInstanceUID=1.2.abc", "'1.2.abc' is not a matching UID"),
            ("StudyDate=2024-01-01", "'2024-01-01' is not a DA value or range (PS3.4 C.2.2.2.5)"),
            ("limit=0", "limit must be an integer ≥ 1"),
            ("offset=-1", "offset must be an integer ≥ 0"),
            ("fuzzymatching=yes", "fuzzymatching must be true or false"),
            ("ReferencedStudySequence.StudyInstanceUID=1",
             "Matching inside sequences (ReferencedStudySequence.StudyInstanceUID) is not "
             "supported"),
            ("includefield=NoSuchKeyword",
             "'NoSuchKeyword' is neither a DICOM keyword nor a tag (8 hex digits)"),
        ],
    )  # fmt: skip
    def test_bad_queries_are_400_with_the_reason(
        self, read_server: ReadServer, query: str, message: str
    ) -> None:
        answer = get(read_server, f"{read_server.dicomweb}/studies?{query}")

        assert answer.status_code == 400
        assert answer.json() == {"success": False, "error": message, "type": "BadRequest"}

    def test_xml_is_not_acceptable(self, read_server: ReadServer) -> None:
        answer = get(
            read_server,
            f"{read_server.dicomweb}/studies",
            'multipart/related; type="application/dicom+xml"',
        )

        assert answer.status_code == 406

    def test_nothing_found_is_an_empty_array(self, read_server: ReadServer) -> None:
        answer = get(read_server, f"{read_server.dicomweb}/studies?PatientID=NOBODY")

        assert (answer.status_code, answer.json()) == (200, [])
        assert answer.headers["Content-Type"] == "application/dicom+json"
