"""Converting stored instances in place, under both OverwriteInstances settings (real Orthanc)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
from prometheus_client import REGISTRY

from dicomgate.codec.profiles import HTJ2K_SYNTAXES
from dicomgate.conversions.journal import ReplaceJournal
from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.runtime import Runtime
from tests.conversions.helpers import (
    CORPUS,
    decoded_crc32s,
    digest,
    statistics,
    stored_files,
)
from tests.orthanc_process import OrthancProcess


def _store_corpus(orthanc: OrthancProcess, corpus_dir: Path) -> dict[str, bytes]:
    originals: dict[str, bytes] = {}
    for name in CORPUS:
        data = (corpus_dir / name).read_bytes()
        assert orthanc.store(data)["Status"] == "Success"
        originals[name] = data
    return originals


def _uid(data: bytes) -> str:
    return str(pydicom.dcmread(BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


def _syntax(data: bytes) -> str:
    return str(pydicom.dcmread(BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID)


def _conversion_metrics() -> dict[str, float]:
    """The Prometheus counters conversions feed (process-wide, so compared as deltas)."""

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    outcomes = {
        o: value("dicomgate_conversion_instances_total", outcome=o)
        for o in ("converted", "skipped", "failed")
    }
    return {
        **outcomes,
        "bytes_before": value("dicomgate_conversion_bytes_total", stage="before"),
        "bytes_after": value("dicomgate_conversion_bytes_total", stage="after"),
        "lossy_source": value(
            "dicomgate_pass_throughs_total", path="conversion", reason="lossy_source"
        ),
    }


async def _run(runtime: Runtime, *, dry_run: bool = False, **selectors: object):  # type: ignore[no-untyped-def]
    selection = make_selection(**selectors)  # type: ignore[arg-type]
    job_id = await start_or_resume(runtime, selection=selection, dry_run=dry_run, resume=False)
    return await run_job(runtime, job_id, concurrency=2)


class TestConvertAll:
    async def test_converts_pixels_losslessly_and_leaves_the_rest_untouched(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, corpus_dir: Path
    ) -> None:
        originals = _store_corpus(conv_orthanc, corpus_dir)
        before_stats = statistics(conv_orthanc)
        before_metrics = _conversion_metrics()

        summary = await _run(runtime, all_studies=True)

        assert summary.state == "completed"
        expected_converted = [n for n, what in CORPUS.items() if what == "converted"]
        assert summary.converted == len(expected_converted)
        assert summary.failed == 0
        assert summary.skipped_by_reason == {
            "no_pixel_data": 2,
            "lossy_source": 1,
            "codec_refused": 1,
        }
        stored = stored_files(conv_orthanc)
        assert set(stored) == {_uid(data) for data in originals.values()}
        for name, data in originals.items():
            now = stored[_uid(data)]
            if CORPUS[name] == "converted":
                assert _syntax(now) in HTJ2K_SYNTAXES, name
                assert decoded_crc32s(now) == decoded_crc32s(data), name
                ds_before = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
                ds_after = pydicom.dcmread(BytesIO(now), stop_before_pixels=True)
                for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "PatientID"):
                    assert ds_after.get(kw) == ds_before.get(kw), (name, kw)
            else:
                assert now == data, f"{name} must be byte-identical"
        after_stats = statistics(conv_orthanc)
        for key in ("CountInstances", "CountSeries", "CountStudies", "CountPatients"):
            assert after_stats[key] == before_stats[key], key
        assert summary.bytes_after < summary.bytes_before
        assert ReplaceJournal(runtime.settings.journal_dir).entries() == []
        counted = {k: v - before_metrics[k] for k, v in _conversion_metrics().items()}
        assert counted == {
            "converted": summary.converted,
            "skipped": 4,
            "failed": 0,
            "bytes_before": summary.bytes_before
            - sum(len(d) for n, d in originals.items() if CORPUS[n] != "converted"),
            "bytes_after": summary.bytes_after
            - sum(len(d) for n, d in originals.items() if CORPUS[n] != "converted"),
            "lossy_source": 1,
        }

        again = await _run(runtime, all_studies=True)
        assert again.converted == 0
        assert again.skipped_by_reason == {
            "already_htj2k": len(expected_converted),
            "no_pixel_data": 2,
            "lossy_source": 1,
            "codec_refused": 1,
        }
        assert stored_files(conv_orthanc) == stored


class TestDryRun:
    async def test_changes_nothing_and_projects_sizes(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, corpus_dir: Path
    ) -> None:
        _store_corpus(conv_orthanc, corpus_dir)
        before_stats = statistics(conv_orthanc)
        before = {uid: digest(d) for uid, d in stored_files(conv_orthanc).items()}

        summary = await _run(runtime, all_studies=True, dry_run=True)

        assert summary.state == "completed"
        assert summary.converted == 4  # instances it would convert
        assert summary.skipped_by_reason["no_pixel_data"] == 2
        assert 0 < summary.bytes_after < summary.bytes_before
        assert sum(t.to_convert for t in summary.studies.values()) == 4
        assert statistics(conv_orthanc) == before_stats
        assert {uid: digest(d) for uid, d in stored_files(conv_orthanc).items()} == before


class TestSelectors:
    async def test_study_selector_converts_only_that_study(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, corpus_dir: Path
    ) -> None:
        originals = _store_corpus(conv_orthanc, corpus_dir)
        ct = pydicom.dcmread(BytesIO(originals["CT_small.dcm"]), stop_before_pixels=True)

        summary = await _run(runtime, study=str(ct.StudyInstanceUID))

        assert summary.converted == 1
        stored = stored_files(conv_orthanc)
        assert _syntax(stored[str(ct.SOPInstanceUID)]) in HTJ2K_SYNTAXES
        mr = originals["MR_small.dcm"]
        assert stored[_uid(mr)] == mr

    async def test_unknown_study_fails_the_job_with_a_clear_message(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        summary = await _run(runtime, study="1.2.3.4.5")
        assert summary.state == "failed"
        assert summary.stop_message == "Failed: No study with StudyInstanceUID 1.2.3.4.5"


class TestIdentityThatIsNotAUid:
    async def test_is_refused_and_the_stored_file_kept(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, pydicom_data_dir: Path
    ) -> None:
        """Orthanc holds pydicom-data's bad_sequence.dcm (hex digests for UIDs): the conversion
        fails it, naming the attribute, instead of writing that value into a new file meta."""
        data = (pydicom_data_dir / "bad_sequence.dcm").read_bytes()
        assert conv_orthanc.store(data)["Status"] == "Success"
        before = stored_files(conv_orthanc)

        summary = await _run(runtime, all_studies=True)

        assert (summary.converted, summary.skipped, summary.failed) == (0, 0, 1)
        assert len(summary.errors) == 1
        assert (
            "InvalidDicom: The DICOM file's SOPInstanceUID (0008,0018) is not a UID"
            in (summary.errors[0])
        )
        assert stored_files(conv_orthanc) == before
        assert ReplaceJournal.count_pending(runtime.settings.journal_dir) == 0
