"""uvicorn's httptools protocol with a bound on a request's head (request line + headers).

httptools keeps no limit of its own: a client that sends 25 MB of one unfinished header
is held whole (and its partial value is copied each time more arrives). This protocol
counts the bytes of a request's head as they arrive and the headers as they are parsed;
past `CONVSCOPE_MAX_HEADER_BYTES` or MAX_HEADERS it answers 431 with the app's JSON
sentence and closes the connection, so a connection holds at most the limit plus one
read. Only the head's own bytes count: a chunk that holds the end of the head and the
start of the body (an upload arriving all at once on a busy server) counts up to the blank
line that ends the head. It keeps httptools' speed (h11, which bounds heads itself, is several times slower
per request: BENCHMARKS.md). `convscope serve --http httptools` (the default) uses it.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

MAX_HEADERS = 100


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = Settings().max_header_bytes

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._header_count = 0
        self._tail = b""  # the last 3 bytes of head seen: its blank line may straddle chunks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._tail = b""
        if self._header_count > MAX_HEADERS:
            self._refuse()  # before the app sees the request
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what arrives next is the next request's head
        self._tail = b""

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = seen[-3:]
        if self._header_count > MAX_HEADERS or (
            self._in_head and self._head_bytes > self.max_head_bytes
        ):
            self._refuse()
            return
        super().data_received(data)
        if self._header_count > MAX_HEADERS or (
            self._in_head and self._head_bytes > self.max_head_bytes
        ):
            self._refuse()

    def _refuse(self) -> None:
        if self.transport.is_closing():
            return
        body = json.dumps(
            {
                "detail": f"The request's headers are too large (at most "
                f"{self.max_head_bytes:,} bytes and {MAX_HEADERS} headers)."
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()
