"""app/bounded_http.py in a real uvicorn, on raw sockets: heads past the bound get 431 and
a closed connection, bodies are never counted as head (however they share a read with it),
keep-alive and pipelined requests are unaffected, an unparsable request gets JSON, and a
head that does not arrive whole in time gets 408 (but a slow body or an idle keep-alive
connection is not cut by it)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from app.bounded_http import MAX_HEADERS, BoundedHttpToolsProtocol
from tests.conftest import serve_in_thread

LIMIT = BoundedHttpToolsProtocol.max_head_bytes


async def echo(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Answers with the number of body bytes it received."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"received": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with serve_in_thread(echo, http=BoundedHttpToolsProtocol) as address:
        yield address


class QuickHead(BoundedHttpToolsProtocol):
    head_seconds = 0.5


@pytest.fixture(scope="module")
def quick() -> Iterator[tuple[str, int]]:
    """A server whose heads must arrive within half a second."""
    with serve_in_thread(echo, http=QuickHead, timeout_keep_alive=5) as quick:
        yield quick


def post(body_size: int, extra_headers: str = "") -> bytes:
    return (
        f"POST /echo HTTP/1.1\r\nHost: t\r\n{extra_headers}Content-Length: {body_size}\r\n\r\n"
    ).encode() + b"x" * body_size


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=10)


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict]]:
    """`count` responses (status, JSON body) read from a keep-alive connection."""
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(answers)} answers"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(fields["content-length"])
        while len(data) < length:
            data += sock.recv(65536)
        answers.append((int(lines[0].split()[1]), json.loads(data[:length])))
        data = data[length:]
    return answers


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def refused(answer: bytes) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in head and b"content-type: application/json" in head
    return json.loads(body)


@pytest.mark.parametrize("body_size", [0, 1, LIMIT, 60_000, 4 * LIMIT + 7])
def test_a_body_sent_with_its_head_in_one_write_is_not_head(address, body_size: int) -> None:
    with connect(address) as sock:
        sock.sendall(post(body_size))
        assert read_responses(sock, 1) == [(200, {"received": body_size})]


def test_keep_alive_and_pipelined_requests_are_not_summed_as_one_head(address) -> None:
    """Many requests on one connection, sent in one write and one at a time: together far
    more than the limit of head, each one small."""
    count = 3 * LIMIT // len(post(10)) + 1
    with connect(address) as sock:
        sock.sendall(post(10) * count)
        assert read_responses(sock, count) == [(200, {"received": 10})] * count
        for _ in range(count):
            sock.sendall(post(3000))
            assert read_responses(sock, 1) == [(200, {"received": 3000})]


def test_a_head_just_under_the_limit_is_served(address) -> None:
    padding = LIMIT - len(post(0)) - len("X-Pad: \r\n") - 10
    with connect(address) as sock:
        sock.sendall(post(5, f"X-Pad: {'a' * padding}\r\n"))
        assert read_responses(sock, 1) == [(200, {"received": 5})]


def test_one_header_over_the_limit_sent_at_once_gets_431(address) -> None:
    with connect(address) as sock:
        sock.sendall(post(5, f"X-Pad: {'a' * (LIMIT + 1)}\r\n"))
        detail = refused(read_until_closed(sock))["detail"]
    assert detail == (
        f"The request's headers are too large (at most {LIMIT:,} bytes and {MAX_HEADERS} headers)."
    )


def test_an_unfinished_header_is_cut_off_near_the_limit(address) -> None:
    """25 MB of one header, never finished: the server answers and closes long before."""
    sent = 0
    with connect(address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Long: ")
        try:
            while sent < 25 << 20:
                sock.sendall(b"a" * 4096)
                sent += 4096
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = read_until_closed(sock)
        except ConnectionResetError:
            answer = b""
    # The bound plus a read or two (asyncio reads up to 256 KiB at once), and the kernel's
    # socket buffers, which hold what was sent after the server stopped reading.
    assert sent < 8 << 20, sent
    if answer:
        refused(answer)


def test_more_than_max_headers_get_431(address) -> None:
    many = "".join(f"X-{i}: 1\r\n" for i in range(MAX_HEADERS + 1))
    with connect(address) as sock:
        sock.sendall(post(0, many))
        refused(read_until_closed(sock))
    just = "".join(f"X-{i}: 1\r\n" for i in range(MAX_HEADERS - 2))  # with Host, Content-Length
    with connect(address) as sock:
        sock.sendall(post(0, just))
        assert read_responses(sock, 1) == [(200, {"received": 0})]


def test_a_request_uvicorn_cannot_parse_gets_a_json_sentence(address) -> None:
    with connect(address) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in head
    assert json.loads(body) == {"detail": "The request is not well-formed HTTP/1.1."}


def test_a_head_trickling_past_its_deadline_gets_408(quick) -> None:
    started = time.monotonic()
    with connect(quick) as sock:
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for byte in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100:
                sock.send(bytes([byte]))  # every byte restarts no timer
                time.sleep(0.05)
        answer = read_until_closed(sock)
    assert time.monotonic() - started < 3
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head
    assert json.loads(body) == {
        "detail": "The request's headers did not arrive within 0.5 seconds; please send it again."
    }


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(quick) -> None:
    with connect(quick) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
    assert 0.4 < time.monotonic() - started < 3


def test_a_slow_body_and_an_idle_keep_alive_are_not_cut_by_the_head_deadline(quick) -> None:
    with connect(quick) as sock:
        sock.sendall(post(3)[:-3])  # the head, promising 3 bytes
        for byte in b"abc":
            time.sleep(0.4)
            sock.sendall(bytes([byte]))
        assert read_responses(sock, 1) == [(200, {"received": 3})]
        time.sleep(1.0)  # idle between requests: the keep-alive timeout's business
        sock.sendall(post(7))
        assert read_responses(sock, 1) == [(200, {"received": 7})]
