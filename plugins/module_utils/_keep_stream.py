# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""One Keep block streamed from a source cluster's Keep straight into a destination's.

The body of the source's GET is the body of the destination's PUT: no block is held in memory, and neither side's
md5 is computed here, since the destination's Keep checks the block against the hash it is PUT under (keepstore
answers 422 to a body that does not match) and so checks what the source sent. Between two plain-HTTP Keep services
on Linux the bytes move in the kernel (splice(2) through a pipe) and never enter this process; otherwise (HTTPS, or
another system) through a 1 MiB window. The Keep services are those the SDK's Keep clients choose for the block
(`weighted_service_roots`), with the tokens they hold.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import select
import socket
import ssl
import threading
import typing as t
import urllib.parse

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import tls_context

STREAM_WINDOW = 1024 * 1024
# What splice(2) says of descriptors it cannot move bytes between (the bytes then go through this process).
_SPLICE_REFUSED = frozenset((errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP))


class KeepStreamError(Exception):
    """A Keep service refused or broke off the stream of one block; `transient` when another attempt may succeed."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class ExactBody:
    """The source's response as the PUT's body: exactly `size` bytes, or an error instead of a short body."""

    def __init__(self, response: t.Any, size: int) -> None:
        self._response = response
        self.left = size

    def read(self, amount: int = STREAM_WINDOW) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self._response.read(min(amount, self.left, STREAM_WINDOW))
        if not chunk:
            raise KeepStreamError(f"the source's Keep ended the block {self.left} bytes short")
        self.left -= len(chunk)
        return chunk

    def buffered(self) -> bytes:
        """The body's bytes the response read along with its headers (or, when there are none, its next read)."""
        peek = getattr(getattr(self._response, "fp", None), "peek", None)
        ahead = len(peek(1)[:self.left]) if peek is not None and self.left > 0 else 0
        return self.read(ahead) if ahead else b""


class KeepStream:
    """Streams blocks from `source_keep` to `destination_keep` (SDK Keep clients, for their services and tokens)."""

    def __init__(self, source_keep: t.Any, destination_keep: t.Any, insecure: tuple[bool, bool], copies: int,
                 storage_classes: list[str] | None, timeout: float, kernel_splice: bool = True) -> None:
        self.source_keep = source_keep
        self.destination_keep = destination_keep
        self.insecure = insecure
        self.copies = copies
        self.storage_classes = storage_classes
        self.timeout = timeout
        # False sends every block through the window, as for HTTPS.
        self.kernel_splice = kernel_splice
        # Bytes of all blocks so far that moved in the kernel, never entering this process.
        self.spliced_bytes = 0
        self._count_lock = threading.Lock()

    def __call__(self, locator: str) -> str | None:
        """The destination's signed locator of the block, or None when it stored fewer copies than asked."""
        from arvados.keep import KeepLocator  # pylint: disable=import-outside-toplevel
        parsed = KeepLocator(locator)
        key, size = f"{parsed.md5sum}+{parsed.size}", int(parsed.size or 0)
        source = self._connect(self.source_keep.weighted_service_roots(parsed)[0], self.insecure[0])
        destination = self._connect(self.destination_keep.weighted_service_roots(KeepLocator(key), need_writable=True)[0], self.insecure[1])
        try:
            response = self._request(source, "GET", locator, self.source_keep.api_token)
            self._check(response, "GET", source)
            answer = self._put(destination, parsed.md5sum, source, response, size)
            body = self._check(answer, "PUT", destination).decode("utf-8").strip()
        except (OSError, http.client.HTTPException) as exc:
            raise KeepStreamError(f"{type(exc).__name__}: {exc}") from None
        finally:
            source.close()
            destination.close()
        stored = answer.getheader("X-Keep-Replicas-Stored")
        return body if stored is None or int(stored) >= self.copies else None

    def _put(self, destination: t.Any, md5sum: str, source: t.Any, response: t.Any, size: int) -> t.Any:
        """PUT the source's response body, exactly `size` bytes, to the destination, and return its answer."""
        destination.putrequest("PUT", destination.keep_path + md5sum, skip_accept_encoding=True)
        for name, value in {"Authorization": f"Bearer {self.destination_keep.api_token}", **self._put_headers(size)}.items():
            destination.putheader(name, value)
        destination.endheaders()
        spliced = send_body(response, size, source.sock, destination.sock, self.timeout, self.kernel_splice)
        with self._count_lock:
            self.spliced_bytes += spliced
        return destination.getresponse()

    def _put_headers(self, size: int) -> dict[str, str]:
        headers = {"Content-Length": str(size), "X-Keep-Desired-Replicas": str(self.copies)}
        if self.storage_classes:
            headers["X-Keep-Storage-Classes"] = ", ".join(self.storage_classes)
        return headers

    def _connect(self, root: str, insecure: bool) -> http.client.HTTPConnection:
        url = urllib.parse.urlsplit(root)
        if url.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=self.timeout, context=tls_context(insecure), blocksize=STREAM_WINDOW)
        else:
            connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=self.timeout, blocksize=STREAM_WINDOW)
        connection.keep_path = url.path if url.path.endswith("/") else url.path + "/"  # type: ignore[attr-defined]
        return connection

    @staticmethod
    def _request(connection: t.Any, method: str, name: str, token: str) -> t.Any:
        connection.request(method, connection.keep_path + name, headers={"Authorization": f"Bearer {token}"})
        return connection.getresponse()

    @staticmethod
    def _check(response: t.Any, method: str, connection: t.Any) -> bytes:
        """The response's body when it is a success (a GET's is left to stream); else a KeepStreamError naming the service."""
        if response.status == 200:
            return b"" if method == "GET" else response.read()
        reason = response.read(200).decode("utf-8", "replace").strip()
        raise KeepStreamError(f"{method} to the Keep service {connection.host}:{connection.port} answered {response.status} ({reason})",
                              transient=response.status >= 500 or response.status in (408, 429))


def send_body(response: t.Any, size: int, source_socket: t.Any, destination_socket: t.Any, timeout: float,
              kernel_splice: bool = True) -> int:
    """Send the `size` bytes of the source's response body on the destination's socket: spliced in the kernel where
    both sockets are plain TCP on Linux (after the bytes the response read along with its headers), else read and
    sent through the window. Returns how many bytes were spliced."""
    body = ExactBody(response, size)
    spliced = 0
    if kernel_splice and hasattr(os, "splice") and all(_plain_tcp(sock) for sock in (source_socket, destination_socket)):
        destination_socket.sendall(body.buffered())
        spliced = splice_body(source_socket, destination_socket, body.left, timeout)
        body.left -= spliced
    while chunk := body.read():
        destination_socket.sendall(chunk)
    return spliced


def _plain_tcp(sock: t.Any) -> bool:
    return isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)


def splice_body(source: socket.socket, destination: socket.socket, size: int, timeout: float) -> int:
    """Move `size` bytes from `source` to `destination` through a pipe, in the kernel; the number of bytes moved.

    0 when splice(2) refuses these sockets before moving anything, so that the caller sends the bytes itself; a
    source that ends early is a KeepStreamError.
    """
    read_end, write_end = os.pipe()
    try:
        with contextlib.suppress(AttributeError, OSError):  # a larger pipe moves more per call; the default one works too
            import fcntl  # pylint: disable=import-outside-toplevel
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, STREAM_WINDOW)  # type: ignore[attr-defined]
        moved = 0
        while moved < size:
            try:
                taken = _splice(source.fileno(), write_end, size - moved, source, select.POLLIN, timeout)
            except OSError as exc:
                if moved or exc.errno not in _SPLICE_REFUSED:
                    raise
                return 0
            if not taken:
                raise KeepStreamError(f"the source's Keep ended the block {size - moved} bytes short")
            moved += taken
            while taken:
                taken -= _splice(read_end, destination.fileno(), taken, destination, select.POLLOUT, timeout)
        return moved
    finally:
        os.close(read_end)
        os.close(write_end)


def _splice(from_fd: int, to_fd: int, count: int, waits_on: socket.socket, event: int, timeout: float) -> int:
    """One splice(2) call, waiting up to `timeout` seconds while the socket `waits_on` is not ready for `event`."""
    while True:
        try:
            return os.splice(from_fd, to_fd, count)  # type: ignore[attr-defined]
        except BlockingIOError:  # sockets with a timeout are non-blocking
            poller = select.poll()
            poller.register(waits_on, event)
            if not poller.poll(timeout * 1000):
                raise TimeoutError(f"the Keep service sent or took nothing for {timeout} seconds") from None
