# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""An in-memory stand-in for the ArvadosClient, answering links and collections lists with filters and paging.

It serves what the token can read (`hidden` uuids are never listed, trashed collections neither) and counts
every list request, so tests can check what a reader asks for.
"""

from __future__ import annotations

import hashlib
import re
import typing as t

SYSTEM_USER = "zzzzz-tpzed-000000000000000"


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE as PostgreSQL reads it: `%` any run, `_` one character, backslash escapes."""
    parts = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def matches(row: t.Mapping[str, t.Any], one_filter: list[t.Any]) -> bool:
    attr, operator, operand = one_filter
    value = row.get(attr)
    if operator == "=":
        return value == operand
    if operator == "!=":
        return value != operand
    if operator == "in":
        return value in operand
    if operator == "like":
        return isinstance(value, str) and like_regex(operand).fullmatch(value) is not None
    raise AssertionError(f"the fake does not serve operator {operator!r}")


class FakeRequest:
    def __init__(self, rows: list[dict[str, t.Any]]) -> None:
        self.rows = rows

    def execute(self, num_retries: int = 0) -> dict[str, t.Any]:
        return {"items": self.rows}


class FakeResource:
    def __init__(self, cluster: FakeCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name

    def list(self, filters: list[t.Any] | None = None, limit: int = 100, offset: int = 0, **kwargs: t.Any) -> FakeRequest:
        self.cluster.requests.append((self.name, filters or []))
        rows = [row for row in self.cluster.visible(self.name) if all(matches(row, f) for f in filters or [])]
        rows.sort(key=lambda row: (row["created_at"], row["uuid"]))
        return FakeRequest([dict(row) for row in rows[offset:offset + limit]])


class FakeApi:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def links(self) -> FakeResource:
        return FakeResource(self.cluster, "links")

    def collections(self) -> FakeResource:
        return FakeResource(self.cluster, "collections")


class FakeOptions:
    num_retries = 0


class FakeCluster:
    """Rows as the API returns them; `hidden` uuids are what the token cannot read."""

    def __init__(self, docker_image_formats: t.Sequence[str] = ("v2",)) -> None:
        self.rows: dict[str, list[dict[str, t.Any]]] = {"links": [], "collections": []}
        self.hidden: set[str] = set()
        self.requests: list[tuple[str, list[t.Any]]] = []
        self.formats = list(docker_image_formats)
        self._serial = 0

    def visible(self, resource: str) -> list[dict[str, t.Any]]:
        return [row for row in self.rows[resource] if row["uuid"] not in self.hidden and not row.get("is_trashed")]

    def next_uuid(self, infix: str) -> str:
        self._serial += 1
        return f"zzzzz-{infix}-{self._serial:015d}"

    def add_collection(self, file_name: str, owner_uuid: str, is_trashed: bool = False, content: str = "") -> dict[str, t.Any]:
        uuid = self.next_uuid("4zz18")
        text = f". 0123456789abcdef0123456789abcdef+3 0:3:{file_name.replace(':', chr(92) + '072')}\n"
        row = {
            "uuid": uuid, "owner_uuid": owner_uuid, "name": f"collection {uuid}", "manifest_text": text,
            "portable_data_hash": f"{hashlib.md5((text + content).encode()).hexdigest()}+{len(text)}", "properties": {},
            "is_trashed": is_trashed, "created_at": f"2026-01-01T00:00:{self._serial % 60:02d}.000000000Z",
            "replication_desired": None, "storage_classes_desired": ["default"],
        }
        self.rows["collections"].append(row)
        return row

    def add_link(self, link_class: str, name: str, head_uuid: str, created_at: str, owner_uuid: str,
                 image_timestamp: str | None = None, tail_uuid: str | None = None) -> dict[str, t.Any]:
        row = {
            "uuid": self.next_uuid("o0j2j"), "link_class": link_class, "name": name, "head_uuid": head_uuid,
            "tail_uuid": tail_uuid, "owner_uuid": owner_uuid, "created_at": created_at,
            "properties": {"image_timestamp": image_timestamp} if image_timestamp else {},
        }
        self.rows["links"].append(row)
        return row


class FakeClient:
    """What CatalogReader and the lookup use of ArvadosClient."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.api = FakeApi(cluster)
        self.options = FakeOptions()
        self.discovery = {"uuidPrefix": "zzzzz", "dockerImageFormats": cluster.formats}

    def execute(self, request: FakeRequest) -> dict[str, t.Any]:
        return request.execute()

    def docker_image_formats(self) -> list[str]:
        return list(self.cluster.formats)
