"""Dry run: every instance classified from Orthanc's index, a sample transcoded, bytes and time
projected and stated as an estimate; nothing in Orthanc (or the journal) changes."""

from __future__ import annotations

import asyncio
import random
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest

from dicomgate.codec.transcode import transcode
from dicomgate.conversions.commands import format_summary
from dicomgate.conversions.estimate import (
    Measurement,
    Ratios,
    choose_sample,
    classify_instance,
)
from dicomgate.conversions.journal import JournalEntry, ReplaceJournal
from dicomgate.conversions.lifecycle import RunSummary
from dicomgate.conversions.plan import make_selection
from dicomgate.conversions.service import run_job, start_or_resume
from dicomgate.kit.hashing import sha256
from dicomgate.runtime import Runtime
from tests.builders import make_dataset, to_bytes
from tests.conversions.helpers import CORPUS, digest, statistics, stored_files
from tests.orthanc_process import OrthancProcess

CANDIDATES = [n for n, what in CORPUS.items() if what == "converted"]


def _store_corpus(orthanc: OrthancProcess, corpus_dir: Path) -> dict[str, bytes]:
    originals = {name: (corpus_dir / name).read_bytes() for name in CORPUS}
    for data in originals.values():
        assert orthanc.store(data)["Status"] == "Success"
    return originals


def _unused_bits_image() -> bytes:
    """An image the tags call convertible but the transcoder passes through (high bits set)."""
    pixels = np.full((16, 16), 0xF001, dtype=np.uint16)  # Bits Stored 12: bits 12–15 are set
    return to_bytes(make_dataset(rows=16, columns=16, bits_stored=12, pixels=pixels))


async def _dry_run(
    runtime: Runtime, *, sample: int | None = None, exact: bool = False, seed: int = 7
) -> RunSummary:
    job_id = await start_or_resume(
        runtime,
        selection=make_selection(all_studies=True),
        dry_run=True,
        resume=False,
        sample=sample,
        exact=exact,
    )
    return await run_job(runtime, job_id, concurrency=2, seed=seed)


async def _real_run(runtime: Runtime) -> RunSummary:
    selection = make_selection(all_studies=True)
    job_id = await start_or_resume(runtime, selection=selection, dry_run=False, resume=False)
    return await run_job(runtime, job_id, concurrency=2)


class TestSampledDryRun:
    async def test_counts_are_exact_and_bytes_an_estimate_from_the_sample(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, corpus_dir: Path
    ) -> None:
        _store_corpus(conv_orthanc, corpus_dir)
        before_stats = statistics(conv_orthanc)
        before = {uid: digest(d) for uid, d in stored_files(conv_orthanc).items()}

        summary = await _dry_run(runtime, sample=2)

        assert summary.state == "completed"
        assert summary.converted == len(CANDIDATES)
        assert summary.skipped_by_reason == {
            "no_pixel_data": 2,
            "lossy_source": 1,
            "codec_refused": 1,
        }
        assert summary.failed == 0
        estimate = summary.estimate
        assert estimate is not None
        assert (estimate.exact, estimate.candidates, estimate.sampled) == (False, 4, 2)
        assert estimate.sampled_converted == 2
        assert estimate.ratio_min is not None and estimate.ratio_max is not None
        assert estimate.ratio_min <= estimate.ratio <= estimate.ratio_max  # type: ignore[operator]
        assert estimate.bytes_after_low <= summary.bytes_after <= estimate.bytes_after_high
        assert estimate.seconds_per_instance is not None and estimate.seconds_per_instance > 0
        assert estimate.projected_seconds == pytest.approx(4 * estimate.seconds_per_instance / 2)
        assert estimate.note.startswith(
            "Estimate: projected bytes and time are extrapolated from 2 sampled instances"
        )
        assert sum(t.to_convert for t in summary.studies.values()) == 4
        assert sum(t.bytes_now for t in summary.studies.values()) == summary.bytes_before
        # Nothing changed.
        assert statistics(conv_orthanc) == before_stats
        assert {uid: digest(d) for uid, d in stored_files(conv_orthanc).items()} == before

        text = format_summary(summary)
        assert "Dry run of job" in text and "nothing was changed" in text
        assert "Instances to convert: 4" in text
        assert "Skipped: 1 the encoder refused it, 1 lossy source" in text
        assert "projected after: ~" in text
        assert "Projected time for a real run: " in text and "~0 s" not in text
        assert "extrapolated from 2 sampled instances" in text

    async def test_the_same_seed_samples_the_same_instances(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, corpus_dir: Path
    ) -> None:
        _store_corpus(conv_orthanc, corpus_dir)
        first = await _dry_run(runtime, sample=2, seed=3)
        second = await _dry_run(runtime, sample=2, seed=3)
        assert first.bytes_after == second.bytes_after
        assert first.estimate is not None and second.estimate is not None
        assert first.estimate.ratio == second.estimate.ratio


class TestExactDryRun:
    async def test_exact_projection_is_what_a_real_run_then_stores(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, corpus_dir: Path
    ) -> None:
        originals = _store_corpus(conv_orthanc, corpus_dir)

        dry = await _dry_run(runtime, exact=True)

        assert dry.estimate is not None and dry.estimate.exact
        assert dry.estimate.sampled == len(CANDIDATES)
        assert dry.estimate.note.startswith("Projected bytes are exact: all 4 candidates")
        expected_after = sum(
            transcode(data).size if CORPUS[name] == "converted" else len(data)
            for name, data in originals.items()
        )
        assert dry.bytes_after == expected_after
        assert "projected after: " in format_summary(dry)
        assert "projected after: ~" not in format_summary(dry)

        real = await _real_run(runtime)
        assert real.converted == dry.converted
        assert real.skipped_by_reason == dry.skipped_by_reason
        assert (real.bytes_before, real.bytes_after) == (dry.bytes_before, dry.bytes_after)

    async def test_a_sample_as_large_as_the_candidates_is_exact(
        self, conv_orthanc: OrthancProcess, runtime: Runtime, corpus_dir: Path
    ) -> None:
        _store_corpus(conv_orthanc, corpus_dir)
        summary = await _dry_run(runtime, sample=50)
        assert summary.estimate is not None and summary.estimate.exact


class TestRefusedOnlyBySampling:
    async def test_a_sampled_instance_the_codec_refuses_counts_as_skipped(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        refused = _unused_bits_image()
        assert transcode(refused).reason == "unused_bits_set"
        conv_orthanc.store(refused)
        conv_orthanc.store(to_bytes(make_dataset(rows=16, columns=16)))

        summary = await _dry_run(runtime, exact=True)

        assert summary.converted == 1
        assert summary.skipped_by_reason == {"unused_bits_set": 1}
        assert summary.estimate is not None
        assert summary.estimate.candidates == 2
        assert summary.estimate.sampled_skipped == {"unused_bits_set": 1}
        assert "1 of the sampled instances could not be converted" in summary.estimate.note


class TestJournalUntouched:
    async def test_a_pending_replacement_is_counted_and_left_to_the_real_run(
        self, conv_orthanc: OrthancProcess, runtime: Runtime
    ) -> None:
        original = to_bytes(make_dataset(rows=16, columns=16))
        orthanc_id = conv_orthanc.store(original)["ID"]
        journal = ReplaceJournal(runtime.settings.journal_dir)
        entry = JournalEntry(
            orthanc_id=orthanc_id,
            sop_instance_uid="1.2.3",
            original_sha256=sha256(original),
            original_size=len(original),
            original_frame_crc32=(),
            converted_sha256=sha256(b"x"),
            converted_size=1,
        )
        journal.record(entry, original)

        summary = await _dry_run(runtime)

        assert summary.recovered == []
        assert summary.estimate is not None and summary.estimate.journal_pending == 1
        assert "1 unfinished replacements are in the journal" in summary.estimate.note
        assert journal.entries() == [entry]


class TestApi:
    async def test_the_job_says_its_projection_is_an_estimate(
        self, clean_orthanc: OrthancProcess, client: httpx.AsyncClient
    ) -> None:
        for n in range(3):
            clean_orthanc.store(to_bytes(make_dataset(rows=16, columns=16, instance_number=n)))

        response = await client.post(
            "/api/ris/conversions/", json={"all": True, "dry_run": True, "sample": 1}
        )

        assert response.status_code == 202
        job_id = response.json()["id"]
        for _ in range(300):
            job = (await client.get(f"/api/ris/conversions/{job_id}/")).json()
            if job["state"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
        assert job["state"] == "completed"
        assert (job["converted"], job["sample_size"]) == (3, 1)
        estimate = job["estimate"]
        assert estimate["sampled"] == 1 and estimate["exact"] is False
        assert estimate["note"].startswith(
            "Estimate: projected bytes and time are extrapolated from 1 sampled instances"
        )
        assert estimate["projected_seconds"] > 0
        assert len(estimate["studies"]) == 3

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"all": True, "sample": 5}, "sample and exact apply to a dry run"),
            ({"all": True, "dry_run": True, "sample": 5, "exact": True}, "either sample or"),
            ({"all": True, "dry_run": True, "sample": 0}, "sample"),
        ],
    )
    async def test_sampling_options_are_checked(
        self, client: httpx.AsyncClient, body: dict[str, object], message: str
    ) -> None:
        response = await client.post("/api/ris/conversions/", json=body)
        assert response.status_code == 422
        assert message in response.json()["error"]


# --- The arithmetic, without Orthanc ---------------------------------------------------------
class TestClassification:
    @pytest.mark.parametrize(
        ("syntax", "tags", "expected"),
        [
            ("1.2.840.10008.1.2.4.201", {"7fe0,0010": None}, ("skipped", "already_htj2k")),
            ("1.2.840.10008.1.2.1", {}, ("skipped", "no_pixel_data")),
            ("1.2.840.10008.1.2.1", {"7fe0,0008": None}, ("skipped", "float_pixels")),
            ("1.2.840.10008.1.2.4.50", {"7fe0,0010": None}, ("skipped", "lossy_source")),
            (
                "1.2.840.10008.1.2.4.100",
                {"7fe0,0010": None},
                ("skipped", "unsupported_transfer_syntax"),
            ),
            (
                "1.2.840.10008.1.2.1",
                {"7fe0,0010": None, "0028,0100": "1", "0028,0004": "MONOCHROME2"},
                ("skipped", "bits_allocated_1"),
            ),
            (
                "1.2.840.10008.1.2.1",
                {"7fe0,0010": None, "0028,0100": "8", "0028,0004": "YBR_FULL_422"},
                ("skipped", "subsampled_ybr"),
            ),
            (
                "1.2.840.10008.1.2.1",
                {"7fe0,0010": None, "0028,0100": "32", "0028,0004": "MONOCHROME2"},
                ("skipped", "codec_refused"),
            ),
            (
                "1.2.840.10008.1.2",
                {"7fe0,0010": None, "0028,0100": "16", "0028,0004": "MONOCHROME2"},
                ("candidate", None),
            ),
        ],
    )
    def test_tags_decide_like_the_transcoder(
        self, syntax: str, tags: dict[str, object], expected: tuple[str, str | None]
    ) -> None:
        found = classify_instance(syntax, tags, max_pixels=10**9)
        assert (found.kind, found.reason) == expected

    def test_the_pixel_budget_fails_like_a_real_run(self) -> None:
        tags = {
            "7fe0,0010": None,
            "0028,0010": "100",
            "0028,0011": "100",
            "0028,0008": "3",
            "0028,0100": "16",
            "0028,0004": "MONOCHROME2",
        }
        found = classify_instance("1.2.840.10008.1.2.1", tags, max_pixels=29_999)
        assert found.kind == "failed"
        assert found.reason == "ImageTooLarge: 30,000 pixels, more than the limit of 29,999"

    def test_every_corpus_file_is_classified_as_the_transcoder_decides(
        self, corpus_dir: Path
    ) -> None:
        for name, what in CORPUS.items():
            ds = pydicom.dcmread(BytesIO((corpus_dir / name).read_bytes()))
            tags = {f"{e.tag.group:04x},{e.tag.element:04x}": str(e.value) for e in ds}
            found = classify_instance(str(ds.file_meta.TransferSyntaxUID), tags, max_pixels=10**9)
            wanted = ("candidate", None) if what == "converted" else ("skipped", what)
            assert (found.kind, found.reason) == wanted, name


class TestSampling:
    def test_every_group_is_represented_and_the_rest_is_proportional(self) -> None:
        items = [("CT", i) for i in range(90)] + [("MR", i) for i in range(9)] + [("SR", 0)]
        chosen = choose_sample(items, group_of=lambda x: x[0], size=10, rng=random.Random(1))
        groups = [g for g, _ in chosen]
        assert len(chosen) == 10 and len(set(chosen)) == 10
        # One each, then the other 7 by largest remainder of 7 × (89, 8, 0) / 97.
        assert (groups.count("CT"), groups.count("MR"), groups.count("SR")) == (7, 2, 1)

    def test_seeded_and_bounded(self) -> None:
        items = list(range(100))
        first = choose_sample(items, group_of=lambda x: x % 3, size=7, rng=random.Random(5))
        again = choose_sample(items, group_of=lambda x: x % 3, size=7, rng=random.Random(5))
        assert first == again and len(first) == 7
        assert choose_sample(items, group_of=lambda x: 0, size=None, rng=random.Random()) == items
        assert len(choose_sample(items, group_of=lambda x: x, size=3, rng=random.Random())) == 3

    def test_projection_uses_the_group_ratio_and_the_range_seen(self) -> None:
        ct = ("CT", "1.2.840.10008.1.2.1", "MONOCHROME2", "16", "1")
        mr = ("MR", "1.2.840.10008.1.2.1", "MONOCHROME2", "16", "1")
        ratios = Ratios.of(
            [
                Measurement(ct, "converted", None, 1000, 400, 0.01, 0.1),
                Measurement(ct, "converted", None, 1000, 600, 0.01, 0.1),
                Measurement(mr, "converted", None, 1000, 800, 0.01, 0.1),
                Measurement(mr, "skipped", "unused_bits_set", 1000, 1000, 0.01, 0.1),
            ]
        )
        assert ratios.overall == pytest.approx(0.6)
        assert ratios.projected(ct, 10_000) == (5000, 4000, 6000)
        assert ratios.projected(mr, 10_000) == (8000, 4000, 8000)  # one sample: overall range
        assert ratios.projected(("US",) * 5, 10_000) == (6000, 4000, 8000)  # type: ignore[arg-type]
        assert Ratios.of([]).projected(ct, 10_000) == (10_000, 10_000, 10_000)
