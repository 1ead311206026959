# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""One discovery document for all the threads of the SDK's thread-safe API client.

`arvados.api.ThreadSafeAPIClient` builds one googleapiclient client per thread (httplib2 is not thread-safe), and each
of them fetches the discovery document again. `SharedDiscoveryDocument`, mixed in before it, keeps the document the
first client fetched, and builds the clients of the other threads from it: their HTTP object answers that one GET from
memory. A task that ensures several images at once so reads the document once, whatever its threads.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import threading
import typing as t

try:
    import arvados.api
    import arvados.util
    import httplib2
    _SDK_IMPORT_ERROR = None
except ImportError as exc:  # _arvados reports the missing SDK
    _SDK_IMPORT_ERROR = exc

_NEW_DOCUMENT_LOCK = threading.Lock()


class DiscoveryDocument:
    """Where the discovery document is, and its bytes once a client has fetched them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.content: bytes | None = None
        self.lock = threading.Lock()

    def is_requested_by(self, uri: str, method: str) -> bool:
        return method == "GET" and uri.split("?", 1)[0] == self.url


def discovery_url(url_template: str, version: str) -> str:
    """The URL googleapiclient fetches for Arvados' discovery service URL template."""
    return url_template.replace("{api}", "arvados").replace("{apiVersion}", version)


if _SDK_IMPORT_ERROR is None:
    class DocumentHttp(httplib2.Http):
        """An HTTP client that fetches the discovery document only when no thread's client has fetched it yet."""

        def __init__(self, document: DiscoveryDocument, **kwargs: t.Any) -> None:
            super().__init__(**kwargs)
            self.document = document

        def request(self, uri: str, method: str = "GET", *args: t.Any, **kwargs: t.Any) -> t.Any:  # pylint: disable=keyword-arg-before-vararg
            if not self.document.is_requested_by(uri, method):
                return super().request(uri, method, *args, **kwargs)
            with self.document.lock:  # threads starting at once wait for the first fetch rather than make their own
                if self.document.content is None:
                    response, content = super().request(uri, method, *args, **kwargs)
                    if response.status != 200:
                        return response, content
                    self.document.content = content
            return httplib2.Response({"status": "200", "content-type": "application/json"}), self.document.content

    class SharedDiscoveryDocument:
        """Mixed in before `arvados.api.ThreadSafeAPIClient` (after its constructor set `local`, `_api_kwargs` and
        `request_id`): each thread's client is built as the SDK builds it (arvados.api.api_client), with an HTTP object of
        its own that shares the client's one discovery document."""

        local: threading.local
        request_id: str | None
        _api_kwargs: dict[str, t.Any]

        def localapi(self) -> t.Any:
            try:
                return self.local.api
            except AttributeError:
                pass
            document = self._discovery_document()
            kwargs = self._api_kwargs
            first = document.content is None
            http = DocumentHttp(document, ca_certs=arvados.util.ca_certs_path(),
                                cache=arvados.api.http_cache("discovery") if first and kwargs.get("cache", True) else None,
                                disable_ssl_certificate_validation=bool(kwargs.get("insecure")))
            client = arvados.api.api_client(**kwargs, http=http)
            client._http._request_id = lambda: self.request_id or arvados.util.new_request_id()  # pylint: disable=protected-access
            self.local.api = client
            return client

        def _discovery_document(self) -> DiscoveryDocument:
            # Kept in __dict__: ThreadSafeAPIClient.__getattr__ would answer a missing attribute by building a client.
            with _NEW_DOCUMENT_LOCK:
                if "_shared_document" not in self.__dict__:
                    url = discovery_url(self._api_kwargs["discoveryServiceUrl"], self._api_kwargs.get("version") or "v1")
                    self.__dict__["_shared_document"] = DiscoveryDocument(url)
                return self.__dict__["_shared_document"]
