# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""One Keep block streamed from a source cluster's Keep straight into a destination's, through a 1 MiB window.

The body of the source's GET is the body of the destination's PUT: no block is held in memory, and neither side's
md5 is computed here, since the destination's Keep checks the block against the hash it is PUT under (keepstore
answers 422 to a body that does not match) and so checks what the source sent. The Keep services are those the
SDK's Keep clients choose for the block (`weighted_service_roots`), with the tokens they hold.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import http.client
import typing as t
import urllib.parse

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import tls_context

STREAM_WINDOW = 1024 * 1024


class KeepStreamError(Exception):
    """A Keep service refused or broke off the stream of one block; `transient` when another attempt may succeed."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class ExactBody:
    """The source's response as the PUT's body: exactly `size` bytes, or an error instead of a short body."""

    def __init__(self, response: t.Any, size: int) -> None:
        self._response = response
        self._left = size

    def read(self, amount: int = STREAM_WINDOW) -> bytes:
        if self._left <= 0:
            return b""
        chunk = self._response.read(min(amount, self._left, STREAM_WINDOW))
        if not chunk:
            raise KeepStreamError(f"the source's Keep ended the block {self._left} bytes short")
        self._left -= len(chunk)
        return chunk


class KeepStream:
    """Streams blocks from `source_keep` to `destination_keep` (SDK Keep clients, for their services and tokens)."""

    def __init__(self, source_keep: t.Any, destination_keep: t.Any, insecure: tuple[bool, bool], copies: int,
                 storage_classes: list[str] | None, timeout: float) -> None:
        self.source_keep = source_keep
        self.destination_keep = destination_keep
        self.insecure = insecure
        self.copies = copies
        self.storage_classes = storage_classes
        self.timeout = timeout

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
            answer = self._request(destination, "PUT", parsed.md5sum, self.destination_keep.api_token, ExactBody(response, size),
                                   self._put_headers(size))
            body = self._check(answer, "PUT", destination).decode("utf-8").strip()
        except (OSError, http.client.HTTPException) as exc:
            raise KeepStreamError(f"{type(exc).__name__}: {exc}") from None
        finally:
            source.close()
            destination.close()
        stored = answer.getheader("X-Keep-Replicas-Stored")
        return body if stored is None or int(stored) >= self.copies else None

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
    def _request(connection: t.Any, method: str, name: str, token: str, body: t.Any = None,
                 headers: t.Mapping[str, str] | None = None) -> t.Any:
        connection.request(method, connection.keep_path + name, body=body, headers={"Authorization": f"Bearer {token}", **(headers or {})})
        return connection.getresponse()

    @staticmethod
    def _check(response: t.Any, method: str, connection: t.Any) -> bytes:
        """The response's body when it is a success (a GET's is left to stream); else a KeepStreamError naming the service."""
        if response.status == 200:
            return b"" if method == "GET" else response.read()
        reason = response.read(200).decode("utf-8", "replace").strip()
        raise KeepStreamError(f"{method} to the Keep service {connection.host}:{connection.port} answered {response.status} ({reason})",
                              transient=response.status >= 500 or response.status in (408, 429))
