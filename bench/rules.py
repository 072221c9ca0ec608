"""Benchmark: how far the compression rules' follower lags behind Orthanc's /changes while a
modality sends a steady C-STORE stream (and the service converts what the rules queue).

Usage (from the project folder): ``.venv/bin/python bench/rules.py [--seconds 60] [--rate 20]
[--poll 1] [--series-size 10] [--database-url postgresql+asyncpg://…]``. Starts its own Orthanc
(DICOM port on, StableAge 1 s) and the real service in-process (its rules loop and job runner),
then a pynetdicom storage SCU sends ``--rate`` instances per second, ``--series-size`` per series
(one association each), for ``--seconds``. Every 100 ms it samples Orthanc's latest change and the
follower's cursor: the lag in changes, and for each StableSeries change the time from when it
appeared in Orthanc's log to when the follower had taken it (both as sampled: ±0.1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from pynetdicom import AE

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.builders import make_dataset
from tests.orthanc_process import OrthancProcess
from tests.rules.helpers import ORTHANC_AET

from dicomgate.app import create_app
from dicomgate.migrations import upgrade_database
from dicomgate.rules.follower import follower_state
from dicomgate.settings import Settings

RULES = '[[rules]]\nname = "everything"\n'


def stream(orthanc: OrthancProcess, *, rate: float, seconds: float, size: int, rows: int) -> int:
    """Send series of ``size`` instances (one association each) at ``rate`` instances/s for
    ``seconds``; how many were sent."""
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        first = make_dataset(rows=rows, columns=rows, patient_id=f"BENCH{sent}")
        series = [first] + [
            make_dataset(
                rows=rows,
                columns=rows,
                patient_id=first.PatientID,
                study_uid=first.StudyInstanceUID,
                series_uid=first.SeriesInstanceUID,
                instance_number=n,
            )
            for n in range(2, size + 1)
        ]
        ae = AE(ae_title="BENCH_SCU")
        ae.add_requested_context(first.SOPClassUID, first.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=ORTHANC_AET)
        assert assoc.is_established, "Orthanc refused the association"
        try:
            for ds in series:  # paced one by one
                pause = started + sent / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                status = assoc.send_c_store(ds)
                assert status is not None and status.Status == 0, f"C-STORE failed: {status}"
                sent += 1
        finally:
            assoc.release()
    return sent


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def run(args: argparse.Namespace, folder: Path) -> None:
    orthanc = OrthancProcess(
        folder / "orthanc", extra_config={"DicomServerEnabled": True, "DicomAet": ORTHANC_AET}
    )
    (folder / "orthanc").mkdir(exist_ok=True)
    orthanc.start()
    try:
        (folder / "rules.toml").write_text(RULES)
        settings = Settings(
            orthanc_url=orthanc.url,
            database_url=args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}",
            journal_dir=folder / "journal",
            workers=args.workers,
            rules_file=folder / "rules.toml",
            rules_poll_interval=args.poll,
            auth_enabled=False,
            log_level="WARNING",
        )
        await asyncio.to_thread(upgrade_database, settings)
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(base_url=orthanc.url) as http,
        ):
            runtime = app.state.runtime
            for _ in range(600):  # the follower's first look at /changes
                if (await follower_state(runtime)).last_seq is not None:
                    break
                await asyncio.sleep(0.1)
            seen = (await follower_state(runtime)).last_seq or 0
            appeared: dict[int, float] = {}  # StableSeries seq → when first seen in Orthanc
            taken: dict[int, float] = {}
            lag_changes: list[int] = []
            done = threading.Event()
            result: list[int] = []

            def send() -> None:
                result.append(
                    stream(
                        orthanc,
                        rate=args.rate,
                        seconds=args.seconds,
                        size=args.series_size,
                        rows=args.rows,
                    )
                )
                done.set()

            sender = threading.Thread(target=send, daemon=True)
            started = time.monotonic()
            sender.start()
            ended: float | None = None  # when the stream ended
            while ended is None or not (
                time.monotonic() > ended + args.poll + 3  # the last series became stable
                and (len(taken) == len(appeared) or time.monotonic() > ended + args.poll + 20)
            ):
                now = time.monotonic()
                page = (await http.get("/changes", params={"since": seen, "limit": 1000})).json()
                for change in page["Changes"]:
                    if change["ChangeType"] == "StableSeries":
                        appeared.setdefault(change["Seq"], now)
                seen = page["Last"]
                cursor = (await follower_state(runtime)).last_seq or 0
                lag_changes.append(max(0, seen - cursor))
                for seq, at in appeared.items():
                    if seq <= cursor and seq not in taken:
                        taken[seq] = max(0.0, now - at)
                if done.is_set() and ended is None:
                    ended = time.monotonic()
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
            metrics_text = (
                await httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench"
                ).get("/metrics")
            ).text
    finally:
        orthanc.stop()

    delays = list(taken.values())
    lag_line = next(
        (line for line in metrics_text.splitlines() if line.startswith("dicomgate_rules_lag_sec")),
        "",
    )
    print(
        f"Stream: {result[0]} instances in {args.seconds:.0f} s ({args.rate:g}/s requested), "
        f"{args.series_size} per series, {args.rows}×{args.rows}"
    )
    print(
        f"Follower: poll every {args.poll:g} s, batches of {settings.rules_batch_size}; "
        f"database {settings.database_url.split(':')[0]}; {args.workers} codec workers"
    )
    print(f"Changes logged by Orthanc: {seen}; sampled every 0.1 s over {elapsed:.0f} s")
    print(
        "Lag in changes (Orthanc's latest − cursor): median "
        f"{statistics.median(lag_changes):.0f}, p95 {percentile(lag_changes, 0.95):.0f}, "
        f"max {max(lag_changes)}"
    )
    if delays:
        print(
            f"StableSeries taken after appearing ({len(delays)} of {len(appeared)}): median "
            f"{statistics.median(delays):.2f} s, p95 {percentile(delays, 0.95):.2f} s, "
            f"max {max(delays):.2f} s"
        )
    print(f"Last batch: {lag_line}")
    print("(shared machine: figures are indicative)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=20, help="instances per second")
    parser.add_argument("--series-size", type=int, default=10)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--poll", type=float, default=1.0, help="DICOMGATE_RULES_POLL_INTERVAL")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dicomgate-bench-rules-") as folder:
        asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    main()
