"""Dry-run arithmetic: classify instances from Orthanc's tags, pick a sample, extrapolate.

A dry run must be cheap, so it never downloads what it can read from Orthanc's index: the
transfer syntax (``/instances/{id}/header``) and the pixel attributes (``/series/{id}/
instances-tags?short``) decide, exactly as the transcoder's own pass-through rules would, which
instances are skipped and why. Only a bounded random sample of the remaining candidates is
downloaded and transcoded (nothing is stored), spread over groups of alike instances (modality,
encoding, photometric, bits) so a mixed study is represented; its measured compression ratio and
time per instance are extrapolated to every candidate and reported as an estimate, with the
sample size and the range of ratios seen.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from dicomgate.codec.profiles import HTJ2K_SYNTAXES, pass_through_reason
from dicomgate.codec.reasons import PassThroughReason
from dicomgate.dicom.image import check_pixel_budget
from dicomgate.errors import ImageTooLarge

# Tags as ``?short`` names them. Orthanc lists Pixel Data with a null value when it is present.
PIXEL_DATA = "7fe0,0010"
FLOAT_PIXEL_DATA = "7fe0,0008"
DOUBLE_FLOAT_PIXEL_DATA = "7fe0,0009"
BITS_ALLOCATED = "0028,0100"
PHOTOMETRIC = "0028,0004"
SAMPLES_PER_PIXEL = "0028,0002"
ROWS = "0028,0010"
COLUMNS = "0028,0011"
NUMBER_OF_FRAMES = "0028,0008"
MODALITY = "0008,0060"

Kind = Literal["candidate", "skipped", "failed"]
GroupKey = tuple[str, str, str, str, str]  # modality, syntax, photometric, bits, samples
NO_GROUP: GroupKey = ("", "", "", "", "")
T = TypeVar("T")


@dataclass(frozen=True)
class Classification:
    """What the tags say about one instance: a candidate to transcode, or skipped/failed why."""

    kind: Kind
    reason: str | None
    group: GroupKey


def _int_tag(tags: Mapping[str, Any], tag: str) -> int | None:
    value = tags.get(tag)
    if isinstance(value, str):
        value = value.split("\\")[0].strip()
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def classify_instance(syntax: str, tags: Mapping[str, Any], *, max_pixels: int) -> Classification:
    """The real run's decisions, from the header and tags only (nothing downloaded).

    Order as in ``convert_instance`` then ``codec.transcode``: already HTJ2K (header), the pixel
    budget (``dicom.image.check_pixel_budget``: a real run fails such an instance), then the
    transcoder's own pass-through rules (``codec.profiles.pass_through_reason``). Both are shared
    with the real run, so the two cannot drift apart. Whatever
    the tags cannot settle (unused high bits, an encoder refusal, verification) stays a
    candidate: the sample finds out how often that happens.
    """
    photometric = str(tags.get(PHOTOMETRIC) or "").strip()
    group: GroupKey = (
        str(tags.get(MODALITY) or "").strip(),
        syntax,
        photometric,
        str(tags.get(BITS_ALLOCATED) or ""),
        str(tags.get(SAMPLES_PER_PIXEL) or ""),
    )
    if syntax in HTJ2K_SYNTAXES:
        return Classification("skipped", PassThroughReason.ALREADY_HTJ2K, group)
    has_pixels = PIXEL_DATA in tags
    if has_pixels:
        rows, cols = _int_tag(tags, ROWS), _int_tag(tags, COLUMNS)
        samples = _int_tag(tags, SAMPLES_PER_PIXEL) or 1
        frames = _int_tag(tags, NUMBER_OF_FRAMES) or 1
        if rows and cols:
            try:
                check_pixel_budget(
                    rows=rows, columns=cols, samples=samples, frames=frames, max_pixels=max_pixels
                )
            except ImageTooLarge:
                pixels = rows * cols * samples * frames
                return Classification(
                    "failed",
                    f"ImageTooLarge: {pixels:,} pixels, more than the limit of {max_pixels:,}",
                    group,
                )
    found = pass_through_reason(
        syntax,
        pixel_data=has_pixels,
        float_pixel_data=FLOAT_PIXEL_DATA in tags or DOUBLE_FLOAT_PIXEL_DATA in tags,
        bits_allocated=_int_tag(tags, BITS_ALLOCATED),
        photometric=photometric,
        samples_per_pixel=_int_tag(tags, SAMPLES_PER_PIXEL) or 1,
    )
    if found is not None:
        return Classification("skipped", found.reason, group)
    return Classification("candidate", None, group)


def choose_sample(
    items: Sequence[T],
    *,
    group_of: Callable[[T], Hashable],
    size: int | None,
    rng: random.Random,
) -> list[T]:
    """A random sample of ``size`` items spread over their groups (``None``: every item).

    One per group first (largest groups first, while the budget lasts), the rest in proportion
    to each group's size (largest remainder). Deterministic for a given ``rng`` seed.
    """
    if size is None or size >= len(items):
        return list(items)
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    order = sorted(groups, key=lambda k: (-len(groups[k]), repr(k)))
    quota = dict.fromkeys(order, 0)
    budget = size
    for key in order[:budget]:
        quota[key] = 1
    budget -= min(size, len(order))
    if budget > 0:
        room = {k: len(groups[k]) - quota[k] for k in order}
        total_room = sum(room.values())
        shares = {k: budget * room[k] / total_room for k in order}
        for key in order:
            quota[key] += int(shares[key])
        left = budget - sum(int(s) for s in shares.values())
        by_remainder = sorted(order, key=lambda k: shares[k] - int(shares[k]), reverse=True)
        for key in by_remainder[:left]:
            quota[key] += 1
    chosen: list[T] = []
    for key in order:
        chosen.extend(rng.sample(groups[key], min(quota[key], len(groups[key]))))
    return chosen


@dataclass(frozen=True)
class Measurement:
    """One sampled instance, downloaded and transcoded (not stored)."""

    group: GroupKey
    outcome: Literal["converted", "skipped", "failed"]
    reason: str | None
    bytes_before: int
    bytes_after: int
    download_seconds: float
    transcode_seconds: float
    request_seconds: float = 0.0  # one small Orthanc call (the metadata read a real run makes)

    @property
    def ratio(self) -> float:
        return self.bytes_after / self.bytes_before if self.bytes_before else 1.0

    @property
    def real_run_seconds(self) -> float:
        """What a real run spends on this instance: download and transcode as measured; the
        converted file posted and downloaded again to verify it, as two transfers at the measured
        speed; and the header, metadata, delete and journal steps, as four small calls."""
        return (
            self.download_seconds * (1 + 2 * self.ratio)
            + self.transcode_seconds
            + 4 * self.request_seconds
        )


@dataclass
class Ratios:
    """Compression ratios (after / before) the sample measured, overall and per group.

    Per group: the byte-weighted ratio and the lowest and highest single ratio seen (a group
    with one converted sample shows no spread, so it takes the overall lowest and highest); a
    group without a converted sample borrows the overall ones (1.0 when nothing converted).
    """

    overall: float | None
    low: float | None
    high: float | None
    by_group: dict[GroupKey, tuple[float, float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, measurements: Sequence[Measurement]) -> Ratios:
        converted = [m for m in measurements if m.outcome == "converted"]
        if not converted:
            return cls(None, None, None)
        by_group: dict[GroupKey, list[Measurement]] = {}
        for m in converted:
            by_group.setdefault(m.group, []).append(m)
        low, high = min(m.ratio for m in converted), max(m.ratio for m in converted)
        return cls(
            overall=_weighted(converted),
            low=low,
            high=high,
            by_group={
                g: (
                    (_weighted(ms), min(m.ratio for m in ms), max(m.ratio for m in ms))
                    if len(ms) > 1
                    else (ms[0].ratio, low, high)
                )
                for g, ms in by_group.items()
            },
        )

    def projected(self, group: GroupKey, size: int) -> tuple[int, int, int]:
        """Projected size of an unsampled candidate: (expected, low, high)."""
        fallback = (
            (self.overall, self.low or 1.0, self.high or 1.0)
            if self.overall is not None
            else (1.0, 1.0, 1.0)
        )
        ratio, low, high = self.by_group.get(group, fallback)
        return round(size * ratio), round(size * low), round(size * high)


def _weighted(measurements: Sequence[Measurement]) -> float:
    before = sum(m.bytes_before for m in measurements)
    return sum(m.bytes_after for m in measurements) / before if before else 1.0


def warm_worker() -> int:
    """Run in each codec worker before timing the sample, so imports are not measured."""
    import time

    import dicomgate.codec.transcode  # noqa: F401  (the import is the work)

    time.sleep(0.05)  # keep this worker busy so the next warm-up task goes to another one
    return 0


@dataclass
class DryRunEstimate:
    """How a dry run's projected bytes and time were obtained (kept with the job)."""

    exact: bool
    candidates: int
    to_convert: int
    sampled: int
    sampled_converted: int
    sampled_skipped: dict[str, int]
    sampled_failed: int
    ratio: float | None
    ratio_min: float | None
    ratio_max: float | None
    bytes_after_low: int
    bytes_after_high: int
    seconds_per_instance: float | None
    projected_seconds: float | None
    concurrency: int
    journal_pending: int = 0
    studies: list[dict[str, Any]] = field(default_factory=list)  # per study, at most 1000
    studies_omitted: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        if not self.note:
            self.note = self._describe()

    def _describe(self) -> str:
        if self.candidates == 0:
            return (
                "Nothing to transcode: every instance is already HTJ2K or skipped, as read from "
                "Orthanc's tags (exact; nothing was downloaded)."
            )
        if self.exact:
            text = (
                f"Projected bytes are exact: all {self.sampled} candidates were downloaded and "
                "transcoded (nothing stored). The projected time is an estimate."
            )
        else:
            text = (
                f"Estimate: projected bytes and time are extrapolated from {self.sampled} sampled "
                f"instances (downloaded and transcoded, nothing stored) out of {self.candidates} "
                "candidates; skipped instances and reasons are exact (read from Orthanc's tags)."
            )
        if self.ratio_min is not None and self.ratio_max is not None:
            text += (
                f" Compression ratio seen: {self.ratio_min:.2f}–{self.ratio_max:.2f} "
                f"(size after / before)."
            )
        refused = self.sampled - self.sampled_converted
        if refused:
            text += (
                f" {refused} of the sampled instances could not be converted (counted as what "
                "they are)"
                + ("; the unsampled candidates may include more." if not self.exact else ".")
            )
        if self.journal_pending:
            text += (
                f" {self.journal_pending} unfinished replacements are in the journal; the next "
                "real run settles them first."
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
