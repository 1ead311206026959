"""The test-only endpoint under /_emulator/ on the API port. Every call needs the admin user's token (else 401/403).

GET    /_emulator/requests  -> {"counts": {"api": {"GET /arvados/v1/users/current": 2}, "keep": {"PUT /<md5>": 1}},
                                "routes": {"api": {"GET /arvados/v1/collections/{uuid}": 1}, "keep": {"PUT /{locator}": 1}},
                                "entries": [{"seq", "service", "method", "path", "route", "status", "request_id",
                                             "method_override", "fault", "time", "duration", "bytes"}, ...]}
DELETE /_emulator/requests  -> {}  (resets the log)
POST   /_emulator/faults    {"method": "PUT", "path": "/*", "status": 503, "count": 1, "drop_after_bytes": null,
                             "message": null, "service": "keep"|"api"|null} -> {"fault": {..., "fault_id": n}}
GET    /_emulator/faults    -> {"faults": [...], "latencies": [...]}
DELETE /_emulator/faults    -> {}  (clears faults and latencies)
POST   /_emulator/latency   {"method": "GET", "path": "/arvados/v1/*", "seconds": 1.5, "service": null}; 0 removes it
GET    /_emulator/config    -> {"dockerImageFormats": ["v2"]}
PUT    /_emulator/config    {"dockerImageFormats": ["v1", "v2"]} -> the new config
POST   /_emulator/tokens    {"user": "bob" or a user uuid, "expires_at": "2030-01-01T00:00:00Z" or null}
                            -> {"uuid", "owner_uuid", "api_token": "v2/...", "expires_at"}

Paths are shell globs over the request path without the query (fnmatch: "*" also matches "/"), methods are
upper case or "*", and a null service matches both the API and the Keep port.
"""
from __future__ import annotations

import typing as t

from . import errors, ids, timestamps
from .cluster import Caller, Cluster, full_token
from .schema import USER
from .traffic import TrafficControl

FORMATS = ("v1", "v2")


class AdminEndpoint:
    def __init__(self, cluster: Cluster, control: TrafficControl) -> None:
        self.cluster = cluster
        self.control = control

    def routes(self) -> list[tuple[str, tuple[str, ...], t.Callable[[Caller, dict], dict]]]:
        return [
            ("/_emulator/requests", ("GET",), self.request_log),
            ("/_emulator/requests", ("DELETE",), self.reset_request_log),
            ("/_emulator/faults", ("GET",), self.list_faults),
            ("/_emulator/faults", ("POST",), self.add_fault),
            ("/_emulator/faults", ("DELETE",), self.clear_faults),
            ("/_emulator/latency", ("POST",), self.set_latency),
            ("/_emulator/config", ("GET",), self.get_config),
            ("/_emulator/config", ("PUT", "POST"), self.set_config),
            ("/_emulator/tokens", ("POST",), self.mint_token),
        ]

    @staticmethod
    def require_admin(caller: Caller) -> None:
        if caller.user is None:
            raise errors.ApiError(401, "Not logged in", from_rails=False)
        if not caller.is_admin:
            raise errors.ApiError(403, "Forbidden: the emulator's admin endpoint needs an admin token", from_rails=False)

    def request_log(self, caller: Caller, body: dict) -> dict:
        return self.control.snapshot()

    def reset_request_log(self, caller: Caller, body: dict) -> dict:
        self.control.reset_log()
        return {}

    def list_faults(self, caller: Caller, body: dict) -> dict:
        return self.control.faults()

    def add_fault(self, caller: Caller, body: dict) -> dict:
        try:
            fault = self.control.add_fault(
                method=str(body.get("method", "*")), path=str(body.get("path", "*")),
                status=_optional_int(body.get("status")), count=int(body.get("count", 1)),
                drop_after_bytes=_optional_int(body.get("drop_after_bytes")), message=body.get("message"),
                service=body.get("service"))
        except (TypeError, ValueError) as failure:
            raise errors.ApiError(422, f"invalid fault: {failure}", from_rails=False)
        return {"fault": fault.as_dict()}

    def clear_faults(self, caller: Caller, body: dict) -> dict:
        self.control.clear_faults()
        return {}

    def set_latency(self, caller: Caller, body: dict) -> dict:
        try:
            seconds = float(body.get("seconds", 0))
        except (TypeError, ValueError) as failure:
            raise errors.ApiError(422, f"invalid latency: {failure}", from_rails=False)
        self.control.set_latency(str(body.get("method", "*")), str(body.get("path", "*")), seconds, body.get("service"))
        return self.control.faults()

    def get_config(self, caller: Caller, body: dict) -> dict:
        return {"dockerImageFormats": list(self.cluster.settings.docker_image_formats)}

    def set_config(self, caller: Caller, body: dict) -> dict:
        if "dockerImageFormats" in body:
            formats = body["dockerImageFormats"]
            if not isinstance(formats, list) or not all(name in FORMATS for name in formats):
                raise errors.ApiError(422, f"dockerImageFormats must be a list drawn from {list(FORMATS)}", from_rails=False)
            self.cluster.settings.docker_image_formats = list(formats)
        return self.get_config(caller, body)

    def mint_token(self, caller: Caller, body: dict) -> dict:
        user = self.find_user(str(body.get("user", "")))
        expires_at = body.get("expires_at")
        if expires_at is not None:
            try:
                expires_at = timestamps.normalize_timestamp(str(expires_at))
            except ValueError as failure:
                raise errors.ApiError(422, f"invalid expires_at: {failure}", from_rails=False)
        record = self.cluster.mint_token(user["uuid"], expires_at, body.get("scopes"))
        return {"uuid": record["uuid"], "owner_uuid": record["owner_uuid"], "api_token": full_token(record),
                "expires_at": record["expires_at"]}

    def find_user(self, name_or_uuid: str) -> dict:
        if ids.UUID_RE.match(name_or_uuid):
            user = self.cluster.db.get(USER, name_or_uuid)
        else:
            rows = self.cluster.db.rows('SELECT "uuid" FROM users WHERE "username" = ?', [name_or_uuid])
            user = self.cluster.db.get(USER, rows[0]["uuid"]) if rows else None
        if user is None:
            raise errors.ApiError(404, f"no such user: {name_or_uuid}", from_rails=False)
        return user


def _optional_int(value: t.Any) -> int | None:
    return None if value is None else int(value)
