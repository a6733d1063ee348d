"""A counting TCP proxy between the web process and PostgreSQL.

It forwards bytes unchanged and reads the client's side of the PostgreSQL protocol to
count what the service sends per request: each simple-protocol query ('Q', which is what
psycopg2 sends for every execute, BEGIN and ROLLBACK included) is one round trip. It is
used only for the round-trip count, never for throughput (it adds its own latency).
The URL given to the service must say sslmode=disable, so the stream stays readable.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
QUERY_TEXT_LIMIT = 120


class CountingProxy:
    """Listens on 127.0.0.1:<port> and forwards each connection to upstream."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        # accept() wakes up this often to see whether the proxy is closing.
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.messages: Counter[str] = Counter()
        self.queries: list[str] = []
        self.connections = 0
        self.closing = False
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """Forget what was counted so far."""
        with self.lock:
            self.messages.clear()
            self.queries.clear()

    def snapshot(self) -> tuple[Counter[str], list[str]]:
        """Message counts by type, and the query texts seen, since the last reset."""
        with self.lock:
            return Counter(self.messages), list(self.queries)

    def close(self) -> None:
        """Stop accepting and close every forwarded connection."""
        self.closing = True
        self.thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            self.sockets += [client, server]
            with self.lock:
                self.connections += 1
            threading.Thread(
                target=self._client_to_server, args=(client, server), daemon=True
            ).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        buffer = b""
        started = False  # past the startup packet (and any SSL/GSS request)
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)
                buffer += data
                buffer, started = self._parse(buffer, started)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _parse(self, buffer: bytes, started: bool) -> tuple[bytes, bool]:
        while True:
            if not started:
                if len(buffer) < 8:
                    return buffer, started
                length, code = struct.unpack("!ii", buffer[:8])
                if len(buffer) < length:
                    return buffer, started
                buffer = buffer[length:]
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    started = True
                continue
            if len(buffer) < 5:
                return buffer, started
            kind = chr(buffer[0])
            (length,) = struct.unpack("!i", buffer[1:5])
            if len(buffer) < 1 + length:
                return buffer, started
            payload = buffer[5 : 1 + length]
            buffer = buffer[1 + length :]
            with self.lock:
                self.messages[kind] += 1
                if kind == "Q":
                    text = payload.rstrip(b"\0").decode(errors="replace")
                    self.queries.append(" ".join(text.split())[:QUERY_TEXT_LIMIT])
