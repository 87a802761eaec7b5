"""Read one file field of a multipart upload, refusing oversized bodies early.

The size limit is checked twice: against Content-Length before anything is read, and by
counting bytes as the body streams in (a client may send no length, or a false one).
A body that stops arriving (a laptop closed mid-upload, a client that sends half and waits)
is given up after `idle_seconds` without a byte; one that trickles (a byte every few
seconds restarts no timer here) is given up once it falls below `min_rate` bytes a second
after a short grace, and every upload must be whole within `total_seconds`, like
Kestrel's minimum data rate and nginx's client_body_timeout. So a connection can hold
its place only as long as it keeps sending a real upload's worth of bytes.

The body is parsed as it arrives and only the wanted field is kept, so at most the limit
(plus the form's few headers) is ever held in memory, and nothing is spooled to disk.
Bodies are read before a forward place is taken (app/api/forward.py), counted against an
`UploadBudget` of their own: how many are received at once, and how many bytes they hold
together; past either, 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

# Room in the body for the multipart boundaries, part headers and small extra fields.
FORM_OVERHEAD = 64 * 1024
# Seconds an upload may take before its rate counts: a connection's slow start.
RATE_GRACE_SECONDS = 5.0
RECEIVING = "The server is receiving too many uploads right now; try again in a few seconds."


class UploadTooLarge(Exception):
    pass


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The upload is larger than the limit of {_size(limit)}.")


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


class UploadBudget:
    """Uploads being received at once (`uploads`) and the bytes they hold (`max_bytes`)."""

    def __init__(self, uploads: int, max_bytes: int):
        self.uploads = uploads
        self.max_bytes = max_bytes
        self.active = 0
        self.held = 0

    @contextmanager
    def receiving(self) -> Iterator[_Held]:
        """A place for one upload, or HTTPException 503; its bytes are given back at exit."""
        if self.active >= self.uploads:
            raise HTTPException(503, RECEIVING, headers={"Retry-After": "2"})
        self.active += 1
        held = _Held(self)
        try:
            yield held
        finally:
            self.active -= 1
            self.held -= held.count


class _Held:
    def __init__(self, budget: UploadBudget):
        self.budget = budget
        self.count = 0

    def add(self, count: int) -> None:
        if self.budget.held + count > self.budget.max_bytes:
            raise HTTPException(503, RECEIVING, headers={"Retry-After": "2"})
        self.budget.held += count
        self.count += count


class _FieldCollector:
    """python-multipart callbacks keeping the first part named `field`."""

    def __init__(self, field: str, limit: int):
        self.field = field.encode()
        self.limit = limit
        self.data: bytearray | None = None
        self._target: bytearray | None = None
        self._headers: dict[bytes, bytes] = {}
        self._name = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
        }

    def on_part_begin(self) -> None:
        self._headers, self._target = {}, None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._name).lower()] = bytes(self._value)
        self._name.clear()
        self._value.clear()

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == self.field and self.data is None:
            self.data = self._target = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target is not None:
            if len(self._target) + end - start > self.limit:
                raise UploadTooLarge
            self._target += data[start:end]


async def read_file_field(
    request: Request,
    field: str,
    limit: int,
    idle_seconds: float = 30.0,
    *,
    total_seconds: float = 60.0,
    min_rate: float = 0.0,
    budget: UploadBudget | None = None,
) -> bytes:
    """The bytes of form field `field`; HTTPException 400, 408, 413, 415, 422 or 503."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise HTTPException(
            415, f"Send the image as multipart/form-data, in a field named {field!r}."
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(422, "The multipart/form-data body has no boundary.")
    body_limit = limit + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise too_large(limit)
    budget = budget or UploadBudget(1, body_limit)
    with budget.receiving() as held:
        return await _read(request, field, limit, idle_seconds, total_seconds, min_rate, held)


async def _read(
    request: Request,
    field: str,
    limit: int,
    idle_seconds: float,
    total_seconds: float,
    min_rate: float,
    held: _Held,
) -> bytes:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    body_limit = limit + FORM_OVERHEAD
    collector = _FieldCollector(field, limit)
    received = 0
    started = time.monotonic()
    try:
        parser = MultipartParser(params[b"boundary"], collector.callbacks())
        chunks = request.stream()
        while True:
            now = time.monotonic()
            waits = {
                "idle": idle_seconds,
                "total": started + total_seconds - now,
                "rate": started + RATE_GRACE_SECONDS + received / min_rate - now
                if min_rate
                else total_seconds,
            }
            reason = min(waits, key=waits.__getitem__)
            try:
                async with asyncio.timeout(max(0.0, waits[reason])):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise _too_slow(reason, idle_seconds, total_seconds, min_rate) from None
            received += len(chunk)
            if received > body_limit:
                raise too_large(limit)
            held.add(len(chunk))
            parser.write(chunk)
        parser.finalize()
    except UploadTooLarge:
        raise too_large(limit) from None
    except (FormParserError, ValueError) as error:
        raise HTTPException(422, f"The multipart/form-data body is malformed: {error}.") from None
    except ClientDisconnect:
        raise HTTPException(400, "The upload was interrupted before it was complete.") from None
    if collector.data is None:
        raise HTTPException(422, f"The form has no field named {field!r}.")
    return bytes(collector.data)


def _too_slow(reason: str, idle: float, total: float, rate: float) -> HTTPException:
    sentence = {
        "idle": f"The upload stopped arriving for {idle:g} seconds",
        "total": f"The upload did not arrive whole within {total:g} seconds",
        "rate": f"The upload arrived slower than {_size(int(rate))} a second",
    }[reason]
    # The rest of the body may never come: the connection is closed after the answer
    # (uvicorn would otherwise keep it open, waiting for the bytes it was promised).
    return HTTPException(408, f"{sentence}; please send it again.", {"Connection": "close"})
