"""WADO-RS retrievals of stored bytes (PS3.18 §10.4): instances, frames and bulk data.

Each answer's representation is negotiated per instance from its stored transfer syntax
(``media.choose``): the stored bytes as they are when the client accepts them, else decoded
to native little endian or re-encoded JPEG 2000 lossless in the worker pool. Multipart answers
are streamed part by part through ``reader.ordered``: at most a few instances are in memory
whatever the size of the study, and a stored file sent as is streams straight from Orthanc.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial

from dicomgate.codec.capabilities import JPEG2000_LOSSLESS
from dicomgate.codec.native import (
    bulk_value_task,
    decode_frame_task,
    decoded_frame_task,
    jpeg2000_frame_task,
    jpeg2000_instance_task,
    native_instance_task,
    stored_frame_task,
)
from dicomgate.dicomweb import framesource, media
from dicomgate.dicomweb.catalog import (
    Details,
    StoredInstance,
    details,
    stored_syntaxes,
)
from dicomgate.dicomweb.dicomjson import PIXEL_DATA
from dicomgate.dicomweb.multipart import (
    Part,
    new_boundary,
    related_content_type,
    whole_body,
    write_parts,
)
from dicomgate.dicomweb.reader import Reader, instances_at, ordered, touch_instances
from dicomgate.errors import BadRequest, Conflict, FrameNotFound, NotFound

MAX_FRAMES_PER_REQUEST = 10_000


@dataclass
class Body:
    """An answer: one part's bytes (Range applies) or a multipart stream."""

    content_type: str
    data: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    single_part: bool = True  # False: ``data`` is a whole multipart body (no Range on it)


async def multipart_body(part_type: str, parts: AsyncIterator[Part]) -> Body:
    """A multipart/related answer streaming ``parts``.

    The first part is made before the answer starts, so a failure there (a stored file whose
    codestream dicomgate refuses to decode, say) is an error answer with its status, not a
    200 whose stream stops; a later part's failure still cuts the stream short.
    """
    first = await anext(parts, None)
    boundary = new_boundary()
    return Body(
        content_type=related_content_type(part_type, boundary),
        chunks=write_parts(_starting_with(first, parts), boundary),
    )


async def _starting_with(first: Part | None, rest: AsyncIterator[Part]) -> AsyncIterator[Part]:
    if first is None:
        return
    yield first
    async for part in rest:
        yield part


async def _file_chunks(reader: Reader, orthanc_id: str) -> AsyncIterator[bytes]:
    async with reader.orthanc.stream_instance_file(orthanc_id) as (_, chunks):
        async for chunk in chunks:
            yield chunk


async def _instance_part(reader: Reader, inst: StoredInstance, rep: media.Representation) -> Part:
    if rep.as_stored:
        return Part(rep.content_type, _file_chunks(reader, inst.orthanc_id))
    data = await reader.orthanc.instance_file(inst.orthanc_id)
    task = (
        jpeg2000_instance_task if rep.transfer_syntax == JPEG2000_LOSSLESS else native_instance_task
    )
    encoded = await reader.pool.run(task, data, reader.settings.max_pixels)
    return Part(f"{media.DICOM}; transfer-syntax={encoded.transfer_syntax}", encoded.data)


async def retrieve_instances(
    reader: Reader,
    ranges: Sequence[media.MediaRange],
    *,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> Body:
    """A study, a series or one instance as Part 10 files (PS3.18 §10.4.1.1.1)."""
    instances = await instances_at(
        reader, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid
    )
    syntaxes = await stored_syntaxes(
        reader.orthanc,
        reader.cache,
        instances,
        concurrency=reader.concurrency,
        recorded=reader.recorded,
    )
    single_ok = sop_uid is not None
    chosen = [
        media.choose(
            ranges,
            media.instance_candidates(syntax, single_part=single_ok),
            default_multipart=True,
            what=f"Instance {inst.sop_uid} (stored as {syntax})",
        )[0]
        for inst, syntax in zip(instances, syntaxes, strict=True)
    ]
    await touch_instances(reader, instances, per_instance=sop_uid is not None)
    if single_ok and not chosen[0].multipart:
        part = await _instance_part(reader, instances[0], chosen[0])
        if isinstance(part.body, bytes):
            return Body(content_type=part.content_type, data=part.body)
        return Body(content_type=part.content_type, chunks=part.body)
    calls = [partial(_instance_part, reader, i, r) for i, r in zip(instances, chosen, strict=True)]
    window = max(2, reader.pool.workers)
    return await multipart_body(media.DICOM, ordered(calls, window=window))


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` → frame numbers (PS3.18 §10.4.1.1.4: 1-based, comma-separated), else 400."""
    numbers: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise BadRequest(f"{text[:80]!r} is not a list of frame numbers (1, 2, …)")
        numbers.append(int(item))
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise BadRequest(f"At most {MAX_FRAMES_PER_REQUEST} frames per request")
    return numbers


async def _whole_file_frame(
    reader: Reader, inst: StoredInstance, index: int, *, decode: bool
) -> bytes:
    data = await reader.orthanc.instance_file(inst.orthanc_id)
    if decode:
        return await reader.pool.run(decoded_frame_task, data, index, reader.settings.max_pixels)
    return await reader.pool.run(stored_frame_task, data, index)


async def _frame_payload(
    reader: Reader,
    inst: StoredInstance,
    found: Details,
    rep: media.Representation,
    number: int,
    stored_frame: bytes | None = None,
) -> bytes:
    stored = found.transfer_syntax
    index = number - 1
    # Big endian native frames are decoded from the whole file (Orthanc's raw bytes are BE).
    raw = (
        stored_frame
        if stored_frame is not None or stored == media.BIG_ENDIAN
        else await reader.orthanc.frame_raw(inst.orthanc_id, index)
    )
    if rep.as_stored:
        if raw is None:
            return await _whole_file_frame(reader, inst, index, decode=stored in media.NATIVE)
        return raw
    facts = found.facts
    assert facts is not None  # frames are only offered for instances with a pixel module
    if raw is None:
        native = await _whole_file_frame(reader, inst, index, decode=True)
        if rep.transfer_syntax == media.EXPLICIT_LE:
            return native
        return await reader.pool.run(jpeg2000_frame_task, native, media.EXPLICIT_LE, facts)
    if rep.transfer_syntax == media.EXPLICIT_LE:
        return await reader.pool.run(decode_frame_task, raw, stored, facts)
    source = media.EXPLICIT_LE if stored in media.LITTLE_ENDIAN_NATIVE else stored
    return await reader.pool.run(jpeg2000_frame_task, raw, source, facts)


async def _frames_body(
    reader: Reader,
    ranges: Sequence[media.MediaRange],
    inst: StoredInstance,
    numbers: list[int],
    known: Details | None = None,
    stored_frame: bytes | None = None,
) -> Body:
    """The frames' answer; ``known``: the file's details, ``stored_frame``: frame 1 as stored
    (both from a ``FrameSource``, for the file just fetched), else read from Orthanc."""
    missing = [n for n in numbers if n > inst.frames]
    if missing:
        raise FrameNotFound(
            f"Frame {missing[0]} does not exist; the instance has {inst.frames} frame(s)"
        )
    found = known
    if found is None:
        read = details(reader.orthanc, reader.pool, reader.cache, [inst], concurrency=1)
        found = (await read).get(inst.orthanc_id)
    if found is None:
        raise NotFound(f"No instance {inst.sop_uid}")
    if found.facts is None:
        raise NotFound(f"Instance {inst.sop_uid} has no pixel data, so no frames")
    candidates = [
        c for c in media.frame_candidates(found.transfer_syntax) if c.multipart or len(numbers) == 1
    ]
    rep, wanted = media.choose(
        ranges,
        candidates,
        default_multipart=True,
        what=f"Frames of instance {inst.sop_uid} (stored as {found.transfer_syntax})",
    )
    label = f"{media.part_media_type(wanted, rep)}; transfer-syntax={rep.transfer_syntax}"
    if not rep.multipart:
        data = await _frame_payload(reader, inst, found, rep, numbers[0], stored_frame)
        return Body(content_type=label, data=data)
    if len(numbers) == 1:  # a viewer's usual request: one part, answered whole, not streamed
        payload = await _frame_payload(reader, inst, found, rep, numbers[0], stored_frame)
        boundary = new_boundary()
        return Body(
            content_type=related_content_type(media.part_media_type(wanted, rep), boundary),
            data=whole_body([Part(label, payload)], boundary),
            single_part=False,
        )

    async def parts() -> AsyncIterator[Part]:
        calls = [partial(_frame_payload, reader, inst, found, rep, n) for n in numbers]
        async for payload in ordered(calls, window=reader.concurrency):
            yield Part(label, payload)

    return await multipart_body(media.part_media_type(wanted, rep), parts())


async def _one_instance(
    reader: Reader, study_uid: str, series_uid: str, sop_uid: str
) -> StoredInstance:
    found = await instances_at(reader, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
    if len(found) > 1:
        # Orthanc keeps one instance per patient: the same UIDs under two patient IDs.
        raise Conflict(
            f"Instance {sop_uid} is stored under {len(found)} patients; dicomgate will not "
            "choose one (use the browse routes with Orthanc IDs)"
        )
    await touch_instances(reader, found, per_instance=True)
    return found[0]


async def retrieve_frames(
    reader: Reader,
    ranges: Sequence[media.MediaRange],
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    numbers: list[int],
) -> Body:
    """Frames of one instance (PS3.18 §10.4.1.1.4), one part per frame in the order asked.

    Frame 1 of a single-frame instance already resolved costs one Orthanc call
    (``framesource``); anything else, or a file that changed, takes the general path.
    """
    key = (study_uid, series_uid, sop_uid)
    source = reader.sources.get(key)
    if source is not None and numbers == [1]:
        reader.touch(source.touched)
        frame = await framesource.stored_frame(reader.orthanc, reader.sources, source)
        if frame is not None:
            return await _frames_body(
                reader, ranges, source.instance, numbers, source.details, frame
            )
    inst = await _one_instance(reader, study_uid, series_uid, sop_uid)
    body = await _frames_body(reader, ranges, inst, numbers)
    found = reader.cache.get(inst.file_uuid)
    if found is not None:
        patient_id = (await reader.series.get(reader.orthanc, inst.series_orthanc_id)).patient_id
        reader.sources.put(inst, found, patient_id=patient_id)
    return body


def parse_bulk_path(text: str) -> tuple[int, ...]:
    """``7FE00010`` or ``00540016/0/00181074`` (tag, item index, tag, …), else 400."""
    segments = [s for s in text.split("/") if s]
    path: list[int] = []
    for position, segment in enumerate(segments):
        is_tag = position % 2 == 0
        valid = (
            len(segment) == 8 and all(c in "0123456789abcdefABCDEF" for c in segment)
            if is_tag
            else segment.isdigit()
        )
        if not valid:
            raise BadRequest(f"{text[:120]!r} is not a bulk data path (tag/index/tag…)")
        path.append(int(segment, 16) if is_tag else int(segment))
    if not path or len(path) % 2 == 0:
        raise BadRequest(f"{text[:120]!r} is not a bulk data path (tag/index/tag…)")
    return tuple(path)


async def retrieve_bulk(
    reader: Reader,
    ranges: Sequence[media.MediaRange],
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    path: tuple[int, ...],
) -> Body:
    """One bulk data value (PS3.18 §10.4.1.1.5); Pixel Data is served as its frames."""
    inst = await _one_instance(reader, study_uid, series_uid, sop_uid)
    if path == (PIXEL_DATA,):
        return await _frames_body(reader, ranges, inst, list(range(1, inst.frames + 1)))
    rep, _ = media.choose(ranges, media.bulk_candidates(), default_multipart=True, what="Bulk data")
    data = await reader.orthanc.instance_file(inst.orthanc_id)
    value = await reader.pool.run(bulk_value_task, data, path)
    if not rep.multipart:
        return Body(content_type=media.OCTET, data=value)

    async def parts() -> AsyncIterator[Part]:
        yield Part(media.OCTET, value)

    return await multipart_body(media.OCTET, parts())
