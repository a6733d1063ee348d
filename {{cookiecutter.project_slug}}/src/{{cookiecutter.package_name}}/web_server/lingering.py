"""Reading what is left of a refused request, so that its client gets the answer.

A request refused before its body is read (a 413 above all) is answered at once. Were the
connection then closed while the client is still sending, the kernel would reset it, and
the reset can overtake the answer: the client sees a broken pipe instead of "too large",
and may send the same upload again and again. So, as servers facing the internet do (a
lingering close), the rest is read and thrown away first, within a cap in bytes and one in
seconds; a client that sends beyond either is cut off.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import gevent

CHUNK_BYTES = 64 * 1024


def discard(read: Callable[[int], bytes], max_bytes: int, seconds: float) -> bool:
    """Read and drop what read() gives until it ends; whether it ended within both caps."""
    discarded = 0
    with gevent.Timeout(seconds, False):  # type: ignore[arg-type] # False: end silently
        while data := read(CHUNK_BYTES):
            discarded += len(data)
            if discarded > max_bytes:
                return False
        return True
    return False


def discard_rest_of_body(body: object, max_bytes: int, seconds: float) -> bool:
    """Drop what the app left unread of a request's body (gunicorn's wsgi.input); whether
    all of it came within the caps, so that the next request on the connection can be read."""
    read: Callable[[int], bytes] | None = getattr(body, "read", None)
    return read is None or discard(read, max_bytes, seconds)


def close_after_answer(client: socket.socket, max_bytes: int, seconds: float) -> None:
    """After an answer that ends the connection: say so (FIN), read what the client still
    sends within the caps, so that closing resets nothing it has not read."""
    with contextlib.suppress(OSError):  # the client has gone already: nothing to protect
        client.shutdown(socket.SHUT_WR)
        discard(client.recv, max_bytes, seconds)
