"""A reference reading of how the Arvados API server picks a Docker image collection, to check the collection against.

Written from arvados/arvados services/api/app/models/collection.rb (commit 913e36393d0d, `find_all_for_docker_image`
and `get_compatible_images`) and DESIGN.md section 1. It shares no code with plugins/: it reads raw API rows (as
dictionaries) and ranks them from scratch.

What the server does, step by step, as modelled here:

1. `container_image` is split at its first `:` into term and tag; a missing tag is `latest` (an empty one stays empty:
   Ruby's "" is true).
2. Matches are the readable `docker_image_repo+tag` links named `term:tag` whose head is a readable (untrashed)
   collection; if there are none, the readable `docker_image_hash` links on readable collections whose name is
   SQL `LIKE 'term%'` (case sensitive, `%` and `_` wildcards).
3. The links are walked newest first (`links.created_at DESC`) and each one overwrites its collection's key, so a
   collection is keyed by its OLDEST matching link: `[-image_timestamp.to_i or 0, -created_at.to_i]`, whole seconds.
   A link without a parseable image timestamp gets 0, which sorts after every (post-1970) timestamp.
4. Collections are sorted by that key (`sort_by`, not stable: equal keys come out in any order, so ties are kept
   together here as one group).
5. Each collection is kept if its manifest holds exactly one file matching the format pattern of
   `dockerImageFormats`; otherwise, if a `docker_image_migration` link owned by the system user has the collection's
   portable data hash as tail (the newest such link wins), the readable collection with the head's portable data hash
   replaces it, if that one fits the pattern. Otherwise it is dropped.
6. Nothing kept while something matched: "Matching Docker image is incompatible" (no image).

The server reads migration links whatever their permissions; a client sees only those its token can read. The view
takes the migration links it is given, so a caller decides which reading to check (the collection documents that it
follows only the ones the token reads).

Image id terms (`sha256:<hex prefix>` or bare hex) are where the collection departs from the server on purpose: it
returns the collections whose `docker_image_hash` link names an id starting with the prefix (`sha256:` optional on
both sides), in the server's order and under the same format and migration rules. `resolve_image_id` models that
documented behaviour, not the server's.
"""
from __future__ import annotations

import calendar
import dataclasses
import re
import typing as t

HASH = "docker_image_hash"
REPO_TAG = "docker_image_repo+tag"
MIGRATION = "docker_image_migration"

# collection.rb, find_all_for_docker_image.
_PATTERNS = {
    frozenset({"v1", "v2"}): re.compile(r"(sha256:)?[0-9A-Fa-f]{64}\.tar"),
    frozenset({"v2"}): re.compile(r"(sha256:)[0-9A-Fa-f]{64}\.tar"),
    frozenset({"v1"}): re.compile(r"[0-9A-Fa-f]{64}\.tar"),
}
_TIME = re.compile(r"\s*(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?\s*(Z|z|UTC|[+-]\d\d(?::?\d\d)?)?\s*")
_ID_LINK_NAME = re.compile(r"(?:sha256:)?([0-9a-f]+)")

FOUND, NOT_FOUND, INCOMPATIBLE = "found", "not found", "incompatible"


def format_pattern(formats: t.Iterable[str]) -> re.Pattern[str]:
    key = frozenset(formats)
    if key not in _PATTERNS:
        raise ValueError(f"Unrecognized configuration for docker_image_formats {sorted(key)}")
    return _PATTERNS[key]


def parse_time(text: t.Any) -> tuple[int, int] | None:
    """(whole seconds since the epoch, nanoseconds) of an ISO 8601 time, or None where Ruby's to_datetime raises.

    Whole seconds are floored, as DateTime#to_i does; a time without a zone is UTC.
    """
    if not isinstance(text, str):
        return None
    match = _TIME.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    try:
        epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        epoch -= offset if zone[0] == "+" else -offset
    nanos = int((fraction + "000000000")[:9])
    return epoch, nanos


def sql_like(pattern: str, text: str) -> bool:
    """PostgreSQL LIKE: `%` any run, `_` one character, backslash escapes; case sensitive."""
    regex, escaped = [], False
    for char in pattern:
        if escaped:
            regex.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex.append(".*")
        elif char == "_":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    return re.fullmatch("".join(regex), text, re.DOTALL) is not None


def manifest_files(manifest_text: str) -> list[str]:
    """The file names (last path component, unescaped) of a manifest, as Keep::Manifest#files lists them."""
    names = []
    for line in manifest_text.splitlines():
        for token in line.split(" ")[1:]:
            parts = token.split(":", 2)
            if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                name = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[2])
                names.append(name.rsplit("/", 1)[-1])
    return names


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One entry of the server's answer: the collection it would run.

    `uuids` holds every uuid the server may return for it: one, or, for a migrated one, every readable collection with
    the migration head's portable data hash (the server takes any). `source_uuid` is the collection whose link placed
    it; `migrated_from` is that uuid when a migration link led elsewhere.
    """

    uuids: frozenset[str]
    portable_data_hash: str
    source_uuid: str
    migrated_from: str | None
    key: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Resolution:
    """The server's answer for one term: FOUND with its compatible candidates, ranked as groups of equal keys."""

    status: str
    groups: tuple[tuple[Candidate, ...], ...] = ()

    @property
    def found(self) -> bool:
        return self.status == FOUND

    @property
    def winners(self) -> tuple[Candidate, ...]:
        """The candidates the server may run (more than one only on a tie in whole seconds)."""
        return self.groups[0] if self.groups else ()

    @property
    def winner_uuids(self) -> frozenset[str]:
        return frozenset(uuid for candidate in self.winners for uuid in candidate.uuids)

    @property
    def winner_pdhs(self) -> frozenset[str]:
        return frozenset(candidate.portable_data_hash for candidate in self.winners)

    @property
    def migrated(self) -> bool:
        return any(candidate.migrated_from for candidate in self.winners)

    def describe(self) -> str:
        if not self.found:
            return self.status
        parts = []
        for candidate in self.winners:
            via = f" (migrated from {candidate.migrated_from})" if candidate.migrated_from else ""
            parts.append(f"{'|'.join(sorted(candidate.uuids))} {candidate.portable_data_hash}{via}")
        return ("one of " if len(parts) > 1 else "") + ", ".join(parts)


class ServerView:
    """What one token reads: image links, collections, and the migration links it is given."""

    def __init__(self, links: t.Iterable[t.Mapping[str, t.Any]], collections: t.Iterable[t.Mapping[str, t.Any]],
                 migrations: t.Iterable[t.Mapping[str, t.Any]], system_user_uuid: str) -> None:
        self.collections = {row["uuid"]: row for row in collections if not row.get("is_trashed")}
        self.files = {uuid: manifest_files(row["manifest_text"]) for uuid, row in self.collections.items()}
        self.by_pdh: dict[str, list[str]] = {}
        for uuid, row in self.collections.items():
            self.by_pdh.setdefault(row["portable_data_hash"], []).append(uuid)
        # base_search: readable links joined to readable collections.
        on_readable = [row for row in links if row["head_uuid"] in self.collections]
        self.repo_tag_links = [row for row in on_readable if row["link_class"] == REPO_TAG]
        self.hash_links = [row for row in on_readable if row["link_class"] == HASH]
        # get_compatible_images: system user's links ordered created_at asc into a Hash, so the newest per tail wins.
        self.migrations: dict[str, str] = {}
        for row in sorted((row for row in migrations if row["link_class"] == MIGRATION and row["owner_uuid"] == system_user_uuid),
                          key=lambda row: parse_time(row["created_at"])):
            self.migrations[row["tail_uuid"]] = row["head_uuid"]

    # The two kinds of terms

    def resolve_name(self, container_image: str, formats: t.Iterable[str]) -> Resolution:
        """What a container request with this `container_image` runs (not a portable data hash)."""
        term, colon, tag = container_image.partition(":")
        name = f"{term}:{tag if colon else 'latest'}"
        matches = [row for row in self.repo_tag_links if row["name"] == name]
        if not matches:
            matches = [row for row in self.hash_links if sql_like(f"{term}%", row["name"])]
        return self._ranked(matches, format_pattern(formats))

    def resolve_image_id(self, image_id_prefix: str, formats: t.Iterable[str]) -> Resolution:
        """The collection's documented answer for an image id term: the holders of ids with this prefix, server-ranked."""
        prefix = image_id_prefix[len("sha256:"):] if image_id_prefix.startswith("sha256:") else image_id_prefix
        matches = []
        for row in self.hash_links:
            named = _ID_LINK_NAME.fullmatch(row["name"])
            if named and named.group(1).startswith(prefix):
                matches.append(row)
        return self._ranked(matches, format_pattern(formats))

    # The ranking

    def _ranked(self, matches: list[t.Mapping[str, t.Any]], pattern: re.Pattern[str]) -> Resolution:
        if not matches:
            return Resolution(NOT_FOUND)
        keying: dict[str, t.Mapping[str, t.Any]] = {}
        for row in sorted(matches, key=lambda row: parse_time(row["created_at"]), reverse=True):
            keying[row["head_uuid"]] = row
        keys = {uuid: sort_key(row) for uuid, row in keying.items()}
        groups: list[tuple[Candidate, ...]] = []
        for key in sorted(set(keys.values())):
            group = []
            for uuid in sorted(uuid for uuid, other in keys.items() if other == key):
                candidate = self._compatible(uuid, pattern, key)
                if candidate is not None:
                    group.append(candidate)
            if group:
                groups.append(tuple(group))
        return Resolution(FOUND, tuple(groups)) if groups else Resolution(INCOMPATIBLE)

    def _fits(self, uuid: str, pattern: re.Pattern[str]) -> bool:
        files = self.files[uuid]
        return len(files) == 1 and pattern.fullmatch(files[0]) is not None

    def _compatible(self, uuid: str, pattern: re.Pattern[str], key: tuple[int, int]) -> Candidate | None:
        pdh = self.collections[uuid]["portable_data_hash"]
        if self._fits(uuid, pattern):
            return Candidate(frozenset([uuid]), pdh, uuid, None, key)
        head = self.migrations.get(pdh)
        targets = self.by_pdh.get(head, []) if head else []
        # Collections with one portable data hash share their manifest, so either all fit or none does.
        if targets and self._fits(targets[0], pattern):
            return Candidate(frozenset(targets), head, uuid, uuid, key)
        return None


def sort_key(link: t.Mapping[str, t.Any]) -> tuple[int, int]:
    """The server's key for a link: [-image_timestamp.to_i, or 0 without one, -created_at.to_i]; smaller runs first."""
    stamp = parse_time((link.get("properties") or {}).get("image_timestamp"))
    created = parse_time(link["created_at"])
    return (-stamp[0] if stamp else 0, -created[0])
