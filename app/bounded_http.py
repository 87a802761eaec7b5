"""uvicorn's httptools protocol with a bound on a request's head (request line + headers).

httptools keeps no limit of its own: a client that sends 25 MB of one unfinished header
is held whole (and its partial value is copied each time more arrives). This protocol
answers 431 with the app's JSON sentence, and closes the connection, past
`CONVSCOPE_MAX_HEADER_BYTES` of head or MAX_HEADERS headers. It counts in two ways,
because httptools says nothing while a header is unfinished and never says where in a
read the head ended:

- a head still unfinished after a read that began inside it (and in which no request
  ended): the whole read was head, so it is counted; a connection holds at most the
  limit plus one or two reads;
- a head that finishes: its request line and headers, as parsed, are measured exactly.

So body bytes that arrive in the same read as the head (a 60 KB upload sent at once) are
never counted as head. A head must also arrive whole within `CONVSCOPE_HEADER_SECONDS` of
its first byte (or of the connection, for its first request), like nginx's
client_header_timeout: past it, 408 (or, if nothing was sent, the connection is closed), so
a connection trickling a header byte now and then cannot be held open for ever. Waiting
between requests is uvicorn's keep-alive timeout.

It keeps httptools' speed (h11, which bounds heads itself, is several times slower per
request: BENCHMARKS.md). `convscope serve --http httptools`
(the default) uses it. uvicorn's own 400 for a request it cannot parse is answered with
the app's JSON sentence too.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

MAX_HEADERS = 100
# ": " and "\r\n" around each header, as sent.
HEADER_FRAMING = 4
UNPARSABLE = "The request is not well-formed HTTP/1.1."


def json_answer(status_line: bytes, detail: str) -> bytes:
    """A whole HTTP/1.1 response closing the connection, with the app's JSON sentence."""
    body = json.dumps({"detail": detail}).encode()
    return (
        status_line + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = Settings().max_header_bytes
    head_seconds = Settings().header_seconds

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._refused = False
        self._messages = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._between_messages()
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_seconds, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing() or not self._in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._start_head_timer()  # a pipelined head: never cut into the answer before it
            return
        self._refused = True
        if self._head_seen:
            detail = (
                f"The request's headers did not arrive within {self.head_seconds:g} seconds; "
                "please send it again."
            )
            self.transport.write(json_answer(b"HTTP/1.1 408 Request Timeout", detail))
        self.transport.close()

    def _between_messages(self) -> None:
        # Whatever arrives next begins a head.
        self._in_head = True
        self._head_seen = False
        self._unfinished_bytes = 0
        self._head_size = 0
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + HEADER_FRAMING
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        if self._too_large():
            self._refuse()  # before the app sees the request
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._messages += 1
        self._between_messages()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        began_in_head, messages = self._in_head, self._messages
        if began_in_head:
            self._head_seen = True
            self._start_head_timer()
        super().data_received(data)
        if began_in_head and self._in_head and messages == self._messages:
            self._unfinished_bytes += len(data)  # all of it was this head
        if self._in_head and self._too_large():
            self._refuse()

    def _too_large(self) -> bool:
        return (
            self._header_count > MAX_HEADERS
            or self._head_size > self.max_head_bytes
            or self._unfinished_bytes > self.max_head_bytes
        )

    def send_400_response(self, msg: str) -> None:
        if not self._refused and not self.transport.is_closing():
            self._refused = True
            self.transport.write(json_answer(b"HTTP/1.1 400 Bad Request", UNPARSABLE))
            self.transport.close()

    def _refuse(self) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        detail = (
            f"The request's headers are too large (at most {self.max_head_bytes:,} bytes "
            f"and {MAX_HEADERS} headers)."
        )
        self.transport.write(json_answer(b"HTTP/1.1 431 Request Header Fields Too Large", detail))
        self.transport.close()
