"""The Keep service: blocks stored as files named by their md5, written as they stream in, read back with signatures."""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
import tempfile
import time
import typing as t

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from .params import bearer_token
from .signing import EMPTY_BLOCK_HASH, SignatureError, SigningKey

BLOCK_SIZE = 64 * 1024 * 1024
CHUNK = 1024 * 1024
_LOCATOR = re.compile(r"^([0-9a-f]{32})(\+([0-9]+))?((\+[A-Z][A-Za-z0-9@_-]*)*)$")


class KeepError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BlockStore:
    """Blocks live in <root>/<first three hex digits>/<md5>; uploads go to <root>/tmp and are renamed into place."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.incoming = root / "tmp"
        self.incoming.mkdir(parents=True, exist_ok=True)

    def path_for(self, block_hash: str) -> pathlib.Path:
        return self.root / block_hash[:3] / block_hash

    def receive(self, stream: t.BinaryIO, expected_hash: str, length: int) -> tuple[str, int]:
        """Streams a body to disk while hashing it; returns (md5, size) once it is stored under its hash."""
        digest = hashlib.md5()
        received = 0
        descriptor, temporary = tempfile.mkstemp(dir=self.incoming)
        try:
            with os.fdopen(descriptor, "wb") as block_file:
                while received < length:
                    chunk = stream.read(min(CHUNK, length - received))
                    if not chunk:
                        break
                    digest.update(chunk)
                    block_file.write(chunk)
                    received += len(chunk)
            block_hash = digest.hexdigest()
            if received != length:
                raise KeepError(400, f"content length {received} did not match specified data size {length}")
            if block_hash != expected_hash:
                raise KeepError(400, f"content hash {block_hash} did not match specified locator {expected_hash}")
            target = self.path_for(block_hash)
            target.parent.mkdir(exist_ok=True)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return block_hash, received

    def open(self, block_hash: str) -> t.BinaryIO:
        try:
            return open(self.path_for(block_hash), "rb")
        except FileNotFoundError:
            if block_hash == EMPTY_BLOCK_HASH:
                return open(os.devnull, "rb")
            raise KeepError(404, "block not found")


class KeepApp:
    """PUT /<md5>, GET and HEAD /<locator>, with keepstore's statuses and error texts."""

    def __init__(self, store: BlockStore, signing_key: SigningKey) -> None:
        self.store = store
        self.signing_key = signing_key
        self.url_map = Map([
            Rule("/<path:locator>", endpoint="block", methods=["GET", "HEAD", "PUT"]),
        ], strict_slashes=False)

    def __call__(self, environ: dict, start_response: t.Callable) -> t.Iterable[bytes]:
        request = Request(environ)
        try:
            adapter = self.url_map.bind_to_environ(environ)
            endpoint, arguments = adapter.match()
            response = self.dispatch(request, arguments["locator"]) if endpoint == "block" else None
        except KeepError as failure:
            response = Response(failure.message + "\n", status=failure.status, content_type="text/plain; charset=utf-8")
        except Exception:
            response = Response("Bad Request\n", status=400, content_type="text/plain; charset=utf-8")
        return response(environ, start_response)

    def dispatch(self, request: Request, locator: str) -> Response:
        match = _LOCATOR.match(locator)
        if match is None:
            raise KeepError(400, "invalid locator")
        if request.method == "PUT":
            return self.put(request, match.group(1))
        return self.get(request, locator, match)

    def put(self, request: Request, expected_hash: str) -> Response:
        length = request.content_length
        if length is None:
            raise KeepError(411, "length required")
        if length > BLOCK_SIZE:
            raise KeepError(413, "request entity too large")
        # The server's own input stream already stops at Content-Length, and skipping werkzeug's wrapper saves a copy.
        block_hash, size = self.store.receive(request.environ["wsgi.input"], expected_hash, length)
        token = bearer_token(request)
        locator = f"{block_hash}+{size}"
        if token:
            locator = self.signing_key.sign_locator(locator, token, int(time.time()) + self.signing_key.ttl)
        replicas = max(1, _int_header(request, "X-Keep-Desired-Replicas"))
        response = Response(locator + "\n", content_type="text/plain; charset=utf-8")
        response.headers["X-Keep-Replicas-Stored"] = str(replicas)
        response.headers["X-Keep-Storage-Classes-Confirmed"] = f"default={replicas}"
        return response

    def get(self, request: Request, locator: str, match: re.Match) -> Response:
        block_hash, size = match.group(1), match.group(3)
        if request.method == "GET" and size is None and block_hash != EMPTY_BLOCK_HASH:
            raise KeepError(405, "method not allowed")
        token = bearer_token(request)
        if not token:
            raise KeepError(401, "no token provided in Authorization header")
        try:
            self.signing_key.verify_locator(locator, token, int(time.time()))
        except SignatureError as failure:
            if failure.reason == "expired":
                raise KeepError(401, "expired signature")
            raise KeepError(400, "invalid signature")
        block_file = self.store.open(block_hash)
        length = os.fstat(block_file.fileno()).st_size
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream", "Vary": "X-Keep-Signature"}
        if request.method == "HEAD":
            block_file.close()
            response = Response(b"")
            response.headers.update(headers)
            return response
        return Response(wrap_file(request.environ, block_file, CHUNK), headers=headers, direct_passthrough=True)


def _int_header(request: Request, name: str) -> int:
    try:
        return int(request.headers.get(name, "0"))
    except ValueError:
        return 0
