"""Read one file field of a multipart upload, refusing oversized bodies early.

The size limit is checked twice: against Content-Length before anything is read, and by
counting bytes as the body streams in (a client may send no length, or a false one).
A body that stops arriving (a laptop closed mid-upload, a client that sends half and waits)
is given up after `idle_seconds` without a byte, so it cannot hold its place forever.
The body is parsed as it arrives and only the wanted field is kept, so at most the limit
(plus the form's few headers) is ever held in memory, and nothing is spooled to disk.
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

# Room in the body for the multipart boundaries, part headers and small extra fields.
FORM_OVERHEAD = 64 * 1024


class UploadTooLarge(Exception):
    pass


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The upload is larger than the limit of {_size(limit)}.")


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


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
    request: Request, field: str, limit: int, idle_seconds: float = 30.0
) -> bytes:
    """The bytes of form field `field`; HTTPException 400, 408, 413, 415 or 422 otherwise."""
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
    collector = _FieldCollector(field, limit)
    received = 0
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        chunks = request.stream()
        while True:
            try:
                async with asyncio.timeout(idle_seconds):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            received += len(chunk)
            if received > body_limit:
                raise too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except UploadTooLarge:
        raise too_large(limit) from None
    except (FormParserError, ValueError) as error:
        raise HTTPException(422, f"The multipart/form-data body is malformed: {error}.") from None
    except ClientDisconnect:
        raise HTTPException(400, "The upload was interrupted before it was complete.") from None
    except TimeoutError:
        raise HTTPException(
            408, f"The upload stopped arriving for {idle_seconds:g} seconds; please send it again."
        ) from None
    if collector.data is None:
        raise HTTPException(422, f"The form has no field named {field!r}.")
    return bytes(collector.data)
