"""A light HTTP/1.1 load client for the forward route: one keep-alive socket, a request built
once, the chunked response read with a few recv calls and checked to its last line.

httpx spends 4-6 ms of CPU on a cifar10 run (parsing, headers, per-chunk Python), which on
a 2-core machine takes a core away from the server it measures; this client spends about a
tenth of that, so the runs/s figures are the server's, as wrk or h2load would give them.

    client = RawClient("127.0.0.1", port)
    request = client.upload_request("/api/models/cifar10/forward", jpeg, {"Accept": "*/*"})
    status, body_bytes, last_line = client.run(request)
"""

from __future__ import annotations

import socket
import uuid

from isal import isal_zlib

BOUNDARY_PREFIX = "convscope-bench-"


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 60.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._socket: socket.socket | None = None
        self._buffer = bytearray()

    def upload_request(self, path: str, image: bytes, headers: dict[str, str]) -> bytes:
        """A multipart POST of `image` as the field "image", as a browser's form sends it."""
        boundary = BOUNDARY_PREFIX + uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"'
            f"\r\nContent-Type: image/jpeg\r\n\r\n".encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Type: multipart/form-data; boundary={boundary}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def run(self, request: bytes) -> tuple[int, int, bytes]:
        """Send one request, read its whole response: (status, body bytes as they travelled,
        the body's last line, decompressed). Raises OSError or ValueError if the connection
        or the response breaks."""
        if self._socket is None:
            self._socket = socket.create_connection((self.host, self.port), self.timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._socket.sendall(request)
            status, headers = self._read_head()
            if headers.get(b"transfer-encoding") == b"chunked":
                body = self._read_chunked()
            else:
                body = self._read_exactly(int(headers.get(b"content-length", b"0")))
        except BaseException:
            self.close()
            raise
        if headers.get(b"connection") == b"close":
            self.close()
        size = len(body)
        if headers.get(b"content-encoding") == b"gzip":
            body = isal_zlib.decompress(body, 16 + 15)
        return status, size, body.rstrip(b"\n").rsplit(b"\n", 1)[-1]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer.clear()

    def _fill(self) -> None:
        data = self._socket.recv(1 << 18)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._buffer += data

    def _read_head(self) -> tuple[int, dict[bytes, bytes]]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        lines = bytes(self._buffer[:end]).split(b"\r\n")
        del self._buffer[: end + 4]
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        return status, headers

    def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _read_chunked(self) -> bytes:
        pieces = []
        while True:
            while (end := self._buffer.find(b"\r\n")) < 0:
                self._fill()
            size = int(bytes(self._buffer[:end]).split(b";", 1)[0], 16)
            del self._buffer[: end + 2]
            piece = self._read_exactly(size + 2)
            if piece[-2:] != b"\r\n":
                raise ValueError("a chunk does not end in CRLF")
            if size == 0:
                return b"".join(pieces)
            pieces.append(piece[:-2])
