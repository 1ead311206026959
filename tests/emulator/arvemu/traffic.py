"""Test controls on live traffic: a request log, injected failures, dropped connections and added latency.

TrafficMiddleware wraps the API and the Keep WSGI applications alike; the admin endpoint drives TrafficControl.
"""
from __future__ import annotations

import collections
import dataclasses
import fnmatch
import http
import itertools
import json
import re
import socket
import threading
import time
import typing as t

from . import errors

ADMIN_PREFIX = "/_emulator/"
SOCKET_KEY = "arvemu.socket"
MAX_LOG_ENTRIES = 100000
_UUID_SEGMENT = re.compile(r"/[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}(?=/|$)")
_PDH_SEGMENT = re.compile(r"/[0-9a-f]{32}\+[0-9]+(?=/|$)")
_KEEP_PATH = re.compile(r"^/[0-9a-f]{32}")
_SIGNATURE = re.compile(r"\+A[^+]*")

StartResponse = t.Callable[..., t.Any]
WsgiApp = t.Callable[[dict, StartResponse], t.Iterable[bytes]]


@dataclasses.dataclass
class Fault:
    """The next `remaining` requests matching method and path fail with status, or lose their connection."""
    fault_id: int
    method: str
    path: str
    status: int | None
    remaining: int
    drop_after_bytes: int | None = None
    message: str | None = None
    service: str | None = None

    def matches(self, service: str, method: str, path: str) -> bool:
        return (self.service in (None, service) and self.method in ("*", method.upper())
                and fnmatch.fnmatchcase(path, self.path))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Latency:
    method: str
    path: str
    seconds: float
    service: str | None = None

    def matches(self, service: str, method: str, path: str) -> bool:
        return (self.service in (None, service) and self.method in ("*", method.upper())
                and fnmatch.fnmatchcase(path, self.path))


def route_of(service: str, path: str) -> str:
    """The path with object identifiers replaced by placeholders, for counting calls per endpoint."""
    if service == "keep":
        return "/{locator}" if _KEEP_PATH.match(path) else path
    return _PDH_SEGMENT.sub("/{uuid}", _UUID_SEGMENT.sub("/{uuid}", path))


def log_path(service: str, path: str) -> str:
    return _SIGNATURE.sub("", path) if service == "keep" else path


class TrafficControl:
    """Shared by the API and Keep servers; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._fault_ids = itertools.count(1)
        self._entries: collections.deque = collections.deque(maxlen=MAX_LOG_ENTRIES)
        self._counts: dict[str, collections.Counter] = {"api": collections.Counter(), "keep": collections.Counter()}
        self._routes: dict[str, collections.Counter] = {"api": collections.Counter(), "keep": collections.Counter()}
        self._faults: list[Fault] = []
        self._latencies: list[Latency] = []

    def record(self, entry: dict) -> None:
        service = entry["service"]
        with self._lock:
            entry["seq"] = next(self._sequence)
            self._entries.append(entry)
            self._counts[service][f"{entry['method']} {entry['path']}"] += 1
            self._routes[service][f"{entry['method']} {entry['route']}"] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "counts": {service: dict(counter) for service, counter in self._counts.items()},
                "routes": {service: dict(counter) for service, counter in self._routes.items()},
                "entries": list(self._entries),
            }

    def reset_log(self) -> None:
        with self._lock:
            self._entries.clear()
            for counter in (*self._counts.values(), *self._routes.values()):
                counter.clear()

    def add_fault(self, method: str, path: str, status: int | None, count: int = 1,
                  drop_after_bytes: int | None = None, message: str | None = None, service: str | None = None) -> Fault:
        if status is None and drop_after_bytes is None:
            raise ValueError("a fault needs a status or drop_after_bytes")
        fault = Fault(next(self._fault_ids), method.upper(), path, status, max(1, count), drop_after_bytes, message, service)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take_fault(self, service: str, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return dataclasses.replace(fault)
        return None

    def set_latency(self, method: str, path: str, seconds: float, service: str | None = None) -> None:
        with self._lock:
            self._latencies = [latency for latency in self._latencies
                               if (latency.method, latency.path, latency.service) != (method.upper(), path, service)]
            if seconds > 0:
                self._latencies.append(Latency(method.upper(), path, seconds, service))

    def latency_for(self, service: str, method: str, path: str) -> float:
        with self._lock:
            return sum(latency.seconds for latency in self._latencies if latency.matches(service, method, path))

    def faults(self) -> dict:
        with self._lock:
            return {"faults": [fault.as_dict() for fault in self._faults],
                    "latencies": [dataclasses.asdict(latency) for latency in self._latencies]}

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latencies.clear()


def effective_method(environ: dict) -> tuple[str, bool]:
    method = environ.get("REQUEST_METHOD", "GET").upper()
    override = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
    if method == "POST" and override:
        return override.upper(), True
    return method, False


def request_id_of(environ: dict) -> str:
    return environ.get("HTTP_X_REQUEST_ID") or ""


class TrafficMiddleware:
    """Logs each request and applies the faults and latency that match it."""

    def __init__(self, app: WsgiApp, control: TrafficControl, service: str) -> None:
        self.app = app
        self.control = control
        self.service = service

    def __call__(self, environ: dict, start_response: StartResponse) -> t.Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            return self.app(environ, start_response)
        method, overridden = effective_method(environ)
        started = time.monotonic()
        entry = {"service": self.service, "method": method, "path": log_path(self.service, path),
                 "route": route_of(self.service, path), "method_override": overridden,
                 "request_id": request_id_of(environ), "time": time.time(), "status": None, "fault": None,
                 "bytes": int(environ.get("CONTENT_LENGTH") or 0)}
        delay = self.control.latency_for(self.service, method, path)
        if delay:
            time.sleep(delay)
        fault = self.control.take_fault(self.service, method, path)
        try:
            if fault is not None:
                entry["fault"] = fault.fault_id
                return self.fail(environ, start_response, fault, entry)
            return self.app(environ, self.capture_status(start_response, entry))
        finally:
            entry["duration"] = time.monotonic() - started
            self.control.record(entry)

    @staticmethod
    def capture_status(start_response: StartResponse, entry: dict) -> StartResponse:
        def capturing(status: str, headers: list, exc_info: t.Any = None) -> t.Any:
            entry["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
        return capturing

    def fail(self, environ: dict, start_response: StartResponse, fault: Fault, entry: dict) -> t.Iterable[bytes]:
        if fault.drop_after_bytes is not None:
            entry["status"] = "dropped"
            drop_connection(environ, fault.drop_after_bytes)
            # The server still wants a status line; writing it to the closed socket fails quietly.
            start_response("500 Internal Server Error", [("Content-Length", "0"), ("Connection", "close")])
            return []
        status = int(fault.status or 500)
        reason = http.HTTPStatus(status).phrase
        entry["status"] = status
        if self.service == "api":
            request_id = request_id_of(environ) or "req-fault"
            body = json.dumps(errors.ApiError(status, fault.message or reason, from_rails=False).body(
                environ.get("PATH_INFO", ""), request_id)).encode()
            content_type = "application/json"
        else:
            body = ((fault.message or reason.lower()) + "\n").encode()
            content_type = "text/plain; charset=utf-8"
        start_response(f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


def drop_connection(environ: dict, after_bytes: int) -> None:
    """Reads part of the request body, then cuts the connection so the client sees a network failure."""
    stream = environ.get("wsgi.input")
    remaining = min(after_bytes, int(environ.get("CONTENT_LENGTH") or 0))
    while stream is not None and remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        remaining -= len(chunk)
    connection = environ.get(SOCKET_KEY)
    if connection is not None:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
