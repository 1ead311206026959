"""The upload resume cache a host's runs leave in its HOME, read as the module writes it, and the Keep traffic of a run."""
from __future__ import annotations

import hashlib
import json
import pathlib
import typing as t

from hosts import Host

PUT_ROUTE = "/{locator}"


def cache_folder(host: Host) -> pathlib.Path:
    return pathlib.Path(host.runner.home) / ".cache" / "arvados-cluster" / "uploads"


def cache_path(host: Host, image_id: str, token: str | None = None) -> pathlib.Path:
    """The file of (cluster, token, image id): named by the SHA-256 of the three, one per line."""
    key = "\n".join((host.emulator.api_host, token or host.token, image_id))
    return cache_folder(host) / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def cached_blocks(path: pathlib.Path) -> dict[str, str]:
    """`<md5>+<size>` -> signed locator, as written; empty when there is no file (yet)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))["blocks"]
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def keep_puts(emulator: t.Any) -> list[dict[str, t.Any]]:
    return [entry for entry in emulator.request_log()["entries"]
            if entry["service"] == "keep" and entry["method"] == "PUT" and entry["route"] == PUT_ROUTE]


def put_hashes(emulator: t.Any) -> set[str]:
    return {entry["path"].strip("/").split("+")[0] for entry in keep_puts(emulator) if entry["status"] == 200}


def put_bytes(emulator: t.Any) -> int:
    return sum(entry["request_bytes"] for entry in keep_puts(emulator))


def head_statuses(emulator: t.Any) -> list[int]:
    return [entry["status"] for entry in emulator.request_log()["entries"] if entry["service"] == "keep" and entry["method"] == "HEAD"]


def block_size(key: str) -> int:
    return int(key.split("+")[1])
