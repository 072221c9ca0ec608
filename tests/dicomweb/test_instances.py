"""WADO-RS instances, metadata and bulk data (PS3.18 §10.4.1.1.1/2/5) with dicomweb-client."""

from __future__ import annotations

import io

import httpx
import imagecodecs
import numpy as np
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from tests.dicomweb.corpus import EXPLICIT_LE, HTJ2K_LOSSLESS, J2K_LOSSLESS, Corpus
from tests.dicomweb.reads import ReadServer, get, parts


class TestRetrieveInstances:
    def test_explicit_little_endian_is_decoded_bit_exact(
        self, reader: DICOMwebClient, corpus: Corpus
    ) -> None:
        for name in ("ct1", "rgb", "mr", "fragmented", "big"):
            item = corpus[name]
            ds = reader.retrieve_instance(
                item.study, item.series, item.sop, media_types=(("application/dicom", EXPLICIT_LE),)
            )

            assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE, name
            assert ds.SOPInstanceUID == item.sop, name
            np.testing.assert_array_equal(ds.pixel_array, item.dataset.pixel_array)
            if name == "rgb":  # the stored YBR_RCT codestream decodes to RGB, and says so
                assert ds.PhotometricInterpretation == "RGB"

    def test_no_transfer_syntax_means_explicit_little_endian(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        item = corpus["mr"]
        answer = get(
            read_server,
            item.path(read_server.dicomweb),
            'multipart/related; type="application/dicom"',
        )

        [(content_type, body)] = parts(answer)
        assert content_type == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
        np.testing.assert_array_equal(
            pydicom.dcmread(io.BytesIO(body)).pixel_array, item.dataset.pixel_array
        )

    def test_dicomweb_client_default_gets_the_stored_htj2k(
        self, reader: DICOMwebClient, corpus: Corpus
    ) -> None:
        item = corpus["rgb"]
        ds = reader.retrieve_instance(item.study, item.series, item.sop)  # transfer-syntax=*

        assert ds.file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
        assert ds.PhotometricInterpretation == "YBR_RCT"
        np.testing.assert_array_equal(ds.pixel_array, item.dataset.pixel_array)

    def test_any_syntax_is_the_stored_file_byte_for_byte(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        series_url = corpus["ct1"].path(read_server.dicomweb).rsplit("/instances/", 1)[0]
        answer = get(
            read_server,
            series_url,
            'multipart/related; type="application/dicom"; transfer-syntax=*',
        )

        got = parts(answer)
        stored = [
            httpx.get(f"{read_server.orthanc.url}/instances/{corpus[n].orthanc_id}/file").content
            for n in ("ct1", "ct2", "ct3")  # in instance-number order
        ]
        assert [ct for ct, _ in got] == [f"application/dicom; transfer-syntax={HTJ2K_LOSSLESS}"] * 3
        assert [body for _, body in got] == stored

    def test_study_mixes_stored_syntaxes_each_part_labelled(
        self, reader: DICOMwebClient, corpus: Corpus
    ) -> None:
        native, j2k = corpus["native"], corpus["j2k"]
        study = list(reader.iter_study(native.study, media_types=(("application/dicom", "*"),)))

        by_uid = {ds.SOPInstanceUID: ds for ds in study}
        assert len(study) == 6  # patient C's six instances
        assert by_uid[native.sop].file_meta.TransferSyntaxUID == EXPLICIT_LE
        assert by_uid[j2k.sop].file_meta.TransferSyntaxUID == J2K_LOSSLESS
        np.testing.assert_array_equal(by_uid[j2k.sop].pixel_array, j2k.dataset.pixel_array)

    def test_jpeg2000_lossless_on_request(self, reader: DICOMwebClient, corpus: Corpus) -> None:
        item = corpus["mr"]
        ds = reader.retrieve_instance(
            item.study, item.series, item.sop, media_types=(("application/dicom", J2K_LOSSLESS),)
        )

        assert ds.file_meta.TransferSyntaxUID == J2K_LOSSLESS
        frames = list(generate_frames(ds.PixelData, number_of_frames=item.frames))
        for number, codestream in enumerate(frames, start=1):
            np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(codestream), item.frame(number))

    def test_single_part_instance(self, read_server: ReadServer, corpus: Corpus) -> None:
        item = corpus["b"]
        answer = get(read_server, item.path(read_server.dicomweb), "application/dicom")

        assert answer.headers["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
        ds = pydicom.dcmread(io.BytesIO(answer.content))
        np.testing.assert_array_equal(ds.pixel_array, item.dataset.pixel_array)

    def test_refusals(self, read_server: ReadServer, corpus: Corpus) -> None:
        item = corpus["ct1"]
        study_url = f"{read_server.dicomweb}/studies/{item.study}"

        htj2k_for_native = get(
            read_server,
            corpus["native"].path(read_server.dicomweb),
            f'multipart/related; type="application/dicom"; transfer-syntax={HTJ2K_LOSSLESS}',
        )
        single_part_study = get(read_server, study_url, "application/dicom")
        unknown = get(read_server, f"{read_server.dicomweb}/studies/1.2.3.999")

        assert htj2k_for_native.status_code == 406
        assert f"transfer-syntax={EXPLICIT_LE} (as stored)" in htj2k_for_native.json()["error"]
        assert single_part_study.status_code == 406
        assert (unknown.status_code, unknown.json()["error"]) == (
            404,
            "No instance in study 1.2.3.999",
        )


class TestMetadata:
    def test_series_metadata_has_every_attribute_with_its_vr(
        self, reader: DICOMwebClient, corpus: Corpus
    ) -> None:
        item = corpus["ct1"]
        metadata = reader.retrieve_series_metadata(item.study, item.series)

        assert len(metadata) == 3
        first = Dataset.from_json({k: v for k, v in metadata[0].items() if "Value" in v})
        source = item.dataset
        assert first.SOPInstanceUID == item.sop  # instance-number order
        keywords = ("PatientID", "PatientName", "StudyDate", "Rows", "Columns", "BitsStored",
                    "PixelRepresentation", "RescaleIntercept", "WindowCenter")  # fmt: skip
        for keyword in keywords:
            assert first[keyword].value == source[keyword].value, keyword
        assert metadata[0]["00280010"] == {"vr": "US", "Value": [32]}
        assert metadata[0]["00281052"] == {"vr": "DS", "Value": [-1024]}
        assert metadata[0]["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
        assert metadata[0]["00020010"] == {"vr": "UI", "Value": [HTJ2K_LOSSLESS]}
        assert metadata[0]["00083002"] == {"vr": "UI", "Value": [HTJ2K_LOSSLESS]}
        assert metadata[0]["7FE00010"] == {
            "vr": "OB",
            "BulkDataURI": item.path(reader.base_url) + "/bulk/7FE00010",
        }

    def test_pixel_data_bulk_data_uri_gives_the_frames(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        item = corpus["mr"]
        metadata = read_server.client("dicom:read").retrieve_instance_metadata(
            item.study, item.series, item.sop
        )
        uri = metadata["7FE00010"]["BulkDataURI"]

        answer = get(
            read_server, uri, "multipart/related; type=application/octet-stream; transfer-syntax=*"
        )

        frames = parts(answer)
        assert len(frames) == 10
        for number, (_, codestream) in enumerate(frames, start=1):
            np.testing.assert_array_equal(imagecodecs.htj2k_decode(codestream), item.frame(number))

    def test_other_bulk_data_is_the_stored_value(
        self, reader: DICOMwebClient, read_server: ReadServer, corpus: Corpus
    ) -> None:
        item = corpus["palette"]
        metadata = reader.retrieve_instance_metadata(item.study, item.series, item.sop)
        red = metadata["00281201"]

        value = reader.retrieve_bulkdata(red["BulkDataURI"])
        single = get(
            read_server, red["BulkDataURI"], "application/octet-stream", Range="bytes=0-15"
        )

        assert red["vr"] == "OW"
        assert value == [item.dataset.RedPaletteColorLookupTableData]
        assert single.status_code == 206
        assert single.content == item.dataset.RedPaletteColorLookupTableData[:16]
        assert metadata["00281101"]["vr"] == "US"  # ambiguous US/SS resolved (LUT descriptor)

    def test_study_metadata_streams_every_series(
        self, reader: DICOMwebClient, corpus: Corpus
    ) -> None:
        item = corpus["ct1"]
        metadata = reader.retrieve_study_metadata(item.study)

        got = {m["00080018"]["Value"][0] for m in metadata}
        assert got == {corpus[n].sop for n in ("ct1", "ct2", "ct3", "rgb")}

    def test_metadata_is_json_only(self, read_server: ReadServer, corpus: Corpus) -> None:
        url = corpus["ct1"].path(read_server.dicomweb) + "/metadata"

        xml = get(read_server, url, 'multipart/related; type="application/dicom+xml"')
        json_ok = get(read_server, url, "application/dicom+json")

        assert xml.status_code == 406
        assert json_ok.status_code == 200
        assert json_ok.headers["Content-Type"] == "application/dicom+json"

    @pytest.mark.parametrize("path", ["0028/0010", "7FE00010/0", "nothex00", "00280010/x/00080100"])
    def test_malformed_bulk_paths(self, read_server: ReadServer, corpus: Corpus, path: str) -> None:
        answer = get(read_server, corpus["ct1"].path(read_server.dicomweb) + f"/bulk/{path}")

        assert answer.status_code == 400

    def test_bulk_of_an_absent_element_is_404(
        self, read_server: ReadServer, corpus: Corpus
    ) -> None:
        answer = get(read_server, corpus["ct1"].path(read_server.dicomweb) + "/bulk/00091001")

        assert answer.status_code == 404
