"""WADO-RS rendered and thumbnail resources (PS3.18 §10.4.1.1.3, §10.4.1.1.6, §8.3.5): frames
windowed and scaled by dicomgate in the worker pool (HTJ2K included), as JPEG or PNG.

A study or series renders as one image per instance (its first frame), streamed as a multipart
answer; its thumbnail is one representative image (the middle instance of its first series).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from functools import partial

from dicomgate.codec.preview import Window
from dicomgate.codec.rendered import RenderOptions, Viewport, render_task
from dicomgate.dicomweb import media
from dicomgate.dicomweb.catalog import StoredInstance
from dicomgate.dicomweb.multipart import Part
from dicomgate.dicomweb.reader import Reader, instances_at, ordered, touch_instances
from dicomgate.dicomweb.retrieve import Body, multipart_body
from dicomgate.errors import BadRequest, FrameNotFound, NotAcceptable

WINDOW_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
MAX_VIEWPORT = 8192


def _numbers(text: str, name: str, count: tuple[int, ...]) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in count:
        expected = " or ".join(str(c) for c in count)
        raise BadRequest(f"{name}={text[:80]} needs {expected} comma-separated numbers")
    return values


def parse_render_params(params: Mapping[str, str], *, thumbnail: bool) -> RenderOptions:
    """``window``, ``viewport`` and ``quality`` (PS3.18 §8.3.5.1); anything malformed is a 400.

    Other rendering parameters (``annotation``, ``charset``, ``iccprofile``) are ignored: no
    annotation is ever burnt in.
    """
    window = None
    if params.get("window"):
        parts = params["window"].split(",")
        values = _numbers(",".join(parts[:2]), "window", (2,))
        name = parts[2].strip().lower() if len(parts) > 2 else "linear"
        if name not in WINDOW_FUNCTIONS or len(parts) > 3 or values[1] <= 0:
            raise BadRequest(
                "window=center,width[,linear|linear-exact|sigmoid] with a positive width"
            )
        window = Window(values[0], values[1], WINDOW_FUNCTIONS[name])
    viewport = None
    if params.get("viewport"):
        numbers = _numbers(params["viewport"], "viewport", (2, 6))
        width, height = int(numbers[0]), int(numbers[1])
        if not (0 < width <= MAX_VIEWPORT and 0 < height <= MAX_VIEWPORT):
            raise BadRequest(f"viewport width and height must be 1–{MAX_VIEWPORT}")
        region = (numbers[2], numbers[3], numbers[4], numbers[5]) if len(numbers) == 6 else None
        viewport = Viewport(width, height, region)
    quality = 90
    if params.get("quality"):
        text = params["quality"].strip()
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise BadRequest("quality must be an integer from 1 to 100")
        quality = int(text)
    return RenderOptions(window=window, viewport=viewport, quality=quality, thumbnail=thumbnail)


async def _render(
    reader: Reader, inst: StoredInstance, options: RenderOptions, data: bytes | None = None
) -> bytes:
    if data is None:
        data = await reader.orthanc.instance_file(inst.orthanc_id)
    return await reader.pool.run(render_task, data, options, reader.settings.max_pixels)


def _single_or_multipart(ranges: Sequence[media.MediaRange]) -> tuple[str, bool]:
    try:
        return media.rendered_choice(ranges, multipart=False), False
    except NotAcceptable:
        return media.rendered_choice(ranges, multipart=True), True


def _wrap(kind: str, multipart: bool, image: bytes) -> Body:
    if not multipart:
        return Body(content_type=kind, data=image)

    async def parts() -> AsyncIterator[Part]:
        yield Part(kind, image)

    return multipart_body(kind, parts())


async def render_instances(
    reader: Reader,
    ranges: Sequence[media.MediaRange],
    options: RenderOptions,
    *,
    study_uid: str,
    series_uid: str | None = None,
) -> Body:
    """A study or series: one image per instance (multipart), or a thumbnail (one image)."""
    instances = await instances_at(reader, study_uid=study_uid, series_uid=series_uid)
    if options.thumbnail:
        first_series = [i for i in instances if i.series_uid == instances[0].series_uid]
        chosen = first_series[len(first_series) // 2]
        await touch_instances(reader, [chosen], per_instance=True)
        kind, multipart = _single_or_multipart(ranges)
        image = await _render(reader, chosen, replace(options, media_type=kind))
        return _wrap(kind, multipart, image)
    kind = media.rendered_choice(ranges, multipart=True)
    await touch_instances(reader, instances, per_instance=False)
    calls = [partial(_render, reader, i, replace(options, media_type=kind)) for i in instances]

    async def parts() -> AsyncIterator[Part]:
        async for image in ordered(calls, window=max(2, reader.pool.workers)):
            yield Part(kind, image)

    return multipart_body(kind, parts())


async def render_frames(
    reader: Reader,
    ranges: Sequence[media.MediaRange],
    options: RenderOptions,
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    numbers: list[int] | None,
) -> Body:
    """An instance (its first frame) or frames of it: one image, or one part per frame."""
    found = await instances_at(reader, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
    inst = found[0]
    await touch_instances(reader, [inst], per_instance=True)
    wanted = numbers or [1]
    if options.thumbnail:
        wanted = wanted[:1]
    missing = [n for n in wanted if n > inst.frames]
    if missing:
        raise FrameNotFound(
            f"Frame {missing[0]} does not exist; the instance has {inst.frames} frame(s)"
        )
    if len(wanted) == 1:
        kind, multipart = _single_or_multipart(ranges)
        frame_options = replace(options, media_type=kind, frame=wanted[0] - 1)
        return _wrap(kind, multipart, await _render(reader, inst, frame_options))
    kind = media.rendered_choice(ranges, multipart=True)
    data = await reader.orthanc.instance_file(inst.orthanc_id)
    calls = [
        partial(_render, reader, inst, replace(options, media_type=kind, frame=n - 1), data)
        for n in wanted
    ]

    async def parts() -> AsyncIterator[Part]:
        async for image in ordered(calls, window=max(2, reader.pool.workers)):
            yield Part(kind, image)

    return multipart_body(kind, parts())
