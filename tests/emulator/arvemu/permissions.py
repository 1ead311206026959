"""The permission graph: who may read, write or manage what, as the server's materialized_permissions computes it.

Edges run from an owner to what it owns (level 3) and from a permission link's tail to its head.
A path's level is its weakest edge; only groups (and the starting user) pass permission on.
Holding a user or group with traverse_owned lets one reach what it owns (objects are checked by owner).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import typing as t

from .filters import Condition

READ, WRITE, MANAGE = 1, 2, 3
LEVEL_BY_LINK_NAME = {"can_read": READ, "can_login": READ, "can_write": WRITE, "can_manage": MANAGE}
PERMISSION_NAMES = ("can_read", "can_write", "can_manage", "can_login")
LEVEL_BY_ACTION = {"read": READ, "write": WRITE, "manage": MANAGE}


@dataclasses.dataclass(frozen=True)
class Edge:
    tail: str
    head: str
    level: int


@dataclasses.dataclass(frozen=True)
class Grant:
    level: int
    traverse_owned: bool


def is_group(uuid: str) -> bool:
    return uuid[5:12] == "-j7d0g-"


def is_user(uuid: str) -> bool:
    return uuid[5:12] == "-tpzed-"


def should_traverse_owned(uuid: str, level: int) -> bool:
    return is_group(uuid) or (is_user(uuid) and level >= MANAGE)


def compute_grants(user_uuid: str, edges: t.Iterable[Edge]) -> dict[str, Grant]:
    """Everything user_uuid holds a permission on, with the best level over all paths."""
    by_tail: dict[str, list[Edge]] = collections.defaultdict(list)
    for edge in edges:
        by_tail[edge.tail].append(edge)
    levels: dict[str, int] = {user_uuid: MANAGE}
    traverse: dict[str, bool] = {user_uuid: True}
    pending = collections.deque([user_uuid])
    while pending:
        node = pending.popleft()
        if node != user_uuid and not is_group(node):
            continue
        for edge in by_tail.get(node, ()):
            level = min(edge.level, levels[node])
            traverse[edge.head] = traverse.get(edge.head, False) or should_traverse_owned(edge.head, edge.level)
            if level > levels.get(edge.head, -1):
                levels[edge.head] = level
                pending.append(edge.head)
    return {uuid: Grant(level, traverse.get(uuid, False)) for uuid, level in levels.items()}


def merged_grants(user_uuid: str, edges: t.Sequence[Edge]) -> dict[str, Grant]:
    """The caller's grants plus those of every user the caller reaches with traverse_owned (e.g. can_manage on a user),
    each capped at the level the caller holds on that user, as readable_by's user_uuids subquery does."""
    own = compute_grants(user_uuid, edges)
    merged = dict(own)
    for other, grant in own.items():
        if other == user_uuid or not is_user(other) or not grant.traverse_owned:
            continue
        for target, borrowed in compute_grants(other, edges).items():
            level = min(grant.level, borrowed.level)
            current = merged.get(target)
            if current is None or level > current.level:
                merged[target] = Grant(level, borrowed.traverse_owned or (current is not None and current.traverse_owned))
    return merged


def trashed_groups(groups: t.Iterable[tuple[str, str, str | None]], now: str) -> frozenset[str]:
    """Groups that are trashed themselves or sit inside a trashed project. Each group is (uuid, owner_uuid, trash_at)."""
    owner_of: dict[str, str] = {}
    trashed_here: set[str] = set()
    for uuid, owner_uuid, trash_at in groups:
        owner_of[uuid] = owner_uuid
        if trash_at is not None and trash_at <= now:
            trashed_here.add(uuid)
    trashed: set[str] = set()
    for uuid in owner_of:
        seen: set[str] = set()
        node: str | None = uuid
        while node is not None and node in owner_of and node not in seen:
            if node in trashed_here:
                trashed.add(uuid)
                break
            seen.add(node)
            node = owner_of.get(node)
    return frozenset(trashed)


@dataclasses.dataclass
class Access:
    """One caller's view of the permission graph."""
    user_uuid: str
    is_admin: bool
    grants: t.Mapping[str, Grant]
    trashed: frozenset[str]

    def level(self, uuid: str | None, owner_uuid: str | None = None) -> int:
        if self.is_admin or (uuid is not None and uuid == self.user_uuid):
            return MANAGE
        direct = self.grants.get(uuid).level if uuid in self.grants else 0
        owner_grant = self.grants.get(owner_uuid) if owner_uuid else None
        via_owner = owner_grant.level if owner_grant and owner_grant.traverse_owned else 0
        return max(direct, via_owner)

    def can(self, action: str, uuid: str | None, owner_uuid: str | None = None) -> bool:
        return self.level(uuid, owner_uuid) >= LEVEL_BY_ACTION[action]

    def uuids_at_least(self, level: int, traverse_only: bool = False) -> list[str]:
        return [uuid for uuid, grant in self.grants.items()
                if grant.level >= level and (grant.traverse_owned or not traverse_only)]

    def managed_users(self) -> list[str]:
        return [self.user_uuid] + [uuid for uuid, grant in self.grants.items()
                                   if is_user(uuid) and grant.traverse_owned and uuid != self.user_uuid]


def _json_list(values: t.Iterable[str]) -> str:
    return json.dumps(sorted(values))


def readable_condition(access: Access, table: str, include_trash: bool, now: str) -> Condition:
    """The WHERE clause readable_by adds: permission (unless admin) and trash (unless include_trash)."""
    clauses: list[str] = []
    params: list = []
    if not access.is_admin:
        checks: list[str] = []
        if table not in ("groups", "api_client_authorizations"):
            checks.append('"owner_uuid" IN (SELECT value FROM json_each(?))')
            params.append(_json_list(access.uuids_at_least(READ, traverse_only=True)))
        checks.append('"uuid" IN (SELECT value FROM json_each(?))')
        params.append(_json_list(access.uuids_at_least(READ)))
        if table == "links":
            checks.append(
                "(\"link_class\" = 'permission' AND (\"head_uuid\" IN (SELECT value FROM json_each(?))"
                " OR \"tail_uuid\" IN (SELECT value FROM json_each(?)) OR \"head_uuid\" IN (SELECT value FROM json_each(?))))")
            users = _json_list(access.managed_users())
            params.extend([users, users, _json_list(access.uuids_at_least(MANAGE))])
        clauses.append("(" + " OR ".join(checks) + ")")
    if not include_trash and table != "api_client_authorizations":
        trash_check = '"owner_uuid" IN (SELECT value FROM json_each(?))'
        params.append(_json_list(access.trashed))
        if table in ("groups", "collections"):
            trash_check = f'({trash_check} OR ("trash_at" IS NOT NULL AND "trash_at" <= ?))'
            params.append(now)
        clauses.append(f"NOT {trash_check}")
    return Condition(" AND ".join(clauses), params)


def writable_by(access: Access, uuid: str, owner_uuid: str, permission_links: t.Iterable[tuple[str, str]]) -> list[str]:
    """The writable_by attribute of groups and users; permission_links are (name, tail_uuid) pairs on this object."""
    if access.can("manage", uuid, owner_uuid) or owner_uuid == access.user_uuid or access.level(owner_uuid) >= MANAGE:
        tails = [tail for name, tail in permission_links if name in ("can_write", "can_manage")]
        return list(dict.fromkeys([owner_uuid, access.user_uuid] + tails))
    if access.can("write", uuid, owner_uuid):
        return [owner_uuid, access.user_uuid]
    return [owner_uuid]
