# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Records of what an Arvados cluster holds about Docker images, built from API responses, and their parsing.

Image links, migration links and image collections as the Python SDK returns them (plain dicts), Arvados times,
manifest file names and Keep locators. Pure code.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import datetime
import re
import typing as t
from dataclasses import dataclass, field

HASH_LINK_CLASS = "docker_image_hash"
REPO_TAG_LINK_CLASS = "docker_image_repo+tag"
MIGRATION_LINK_CLASS = "docker_image_migration"
# The collection property that lets a run killed before its links find its upload again.
IMAGE_ID_PROPERTY = "docker-image-id"
# The property arv-keepdocker sets on the collections it uploads.
REPO_TAG_PROPERTY = "docker-image-repo-tag"

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_SECOND = datetime.timedelta(seconds=1)
_ARVADOS_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"([Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_KEEP_LOCATOR = re.compile(r"([0-9A-Fa-f]{32})(\+[0-9]+)?(?:\+[A-Z][A-Za-z0-9@_-]*)*")
_MANIFEST_ESCAPE = re.compile(r"\\(\\|[0-7]{3})")
_SYSTEM_USER_UUID = re.compile(r"[a-z0-9]{5}-tpzed-0{15}")

SortKey = t.Tuple[int, int]


def parse_arvados_time(text: str) -> datetime.datetime:
    """Parse an Arvados or Docker timestamp into an aware datetime (UTC when it names no zone).

    Handles nine fractional digits (`2026-11-26T19:56:41.294780000Z`), which `fromisoformat`
    cannot on Python 3.9 and 3.10; digits past microseconds are dropped.
    """
    match = _ARVADOS_TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    return datetime.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        int((fraction or "0")[:6].ljust(6, "0")), tzinfo=_time_zone(zone),
    )


def _time_zone(zone: str | None) -> datetime.tzinfo:
    if zone is None or zone in "Zz":
        return _UTC
    digits = zone[1:].replace(":", "")
    offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return datetime.timezone(-offset if zone.startswith("-") else offset)


def parse_image_timestamp(value: t.Any) -> datetime.datetime | None:
    """A link's `image_timestamp` property, or None when missing or unreadable (the server then uses 0)."""
    try:
        return parse_arvados_time(value)
    except (ValueError, OverflowError):
        return None


def whole_seconds(moment: datetime.datetime) -> int:
    """Seconds since the epoch, rounded down, as Ruby's `Time#to_i` gives them."""
    return (moment - _EPOCH) // _ONE_SECOND


def manifest_file_names(manifest_text: str) -> tuple[str, ...]:
    """Paths of the files a manifest holds, in manifest order, without empty-directory placeholders."""
    paths: dict[str, None] = {}
    for line in manifest_text.splitlines():
        tokens = line.split()
        if tokens:
            paths.update(dict.fromkeys(_stream_file_paths(tokens)))
    return tuple(paths)


def _stream_file_paths(tokens: list[str]) -> t.Iterator[str]:
    stream = _unescape(tokens[0])
    in_file_tokens = False
    for token in tokens[1:]:
        in_file_tokens = in_file_tokens or not _KEEP_LOCATOR.fullmatch(token)
        parts = token.split(":", 2)
        if in_file_tokens and len(parts) == 3 and parts[1].isdigit():
            path = _join_path(stream, _unescape(parts[2]))
            if not (path.rpartition("/")[2] == "." and int(parts[1]) == 0):
                yield path


# (signed locator, start in the block, length): one piece of a file.
Segment = t.Tuple[str, int, int]


def file_segments(manifest_text: str, file_name: str) -> list[Segment] | None:
    """Where the top-level file `file_name` lies in the manifest's blocks; None when it has no such file."""
    for line in manifest_text.splitlines():
        tokens = line.split()
        if not tokens or tokens[0] != ".":
            continue
        locators = [token for token in tokens[1:] if _KEEP_LOCATOR.fullmatch(token)]
        for token in tokens[1 + len(locators):]:
            position, _sep, rest = token.partition(":")
            length, _sep, name = rest.partition(":")
            if _unescape(name) == file_name:
                return _pieces(locators, int(position), int(length))
    return None


def _pieces(locators: list[str], position: int, length: int) -> list[Segment]:
    """The blocks' parts that hold bytes `position` to `position + length` of the stream."""
    pieces: list[Segment] = []
    block_start = 0
    for locator in locators:
        size = _KEEP_LOCATOR.fullmatch(locator).group(2)  # type: ignore[union-attr]
        block_size = int(size[1:]) if size else 0
        start, end = max(position, block_start), min(position + length, block_start + block_size)
        if start < end:
            pieces.append((locator, start - block_start, end - start))
        block_start += block_size
    return pieces


def _unescape(token: str) -> str:
    # Escapes are octal bytes of UTF-8 names, so decode the bytes together.
    raw = bytearray()
    position = 0
    for match in _MANIFEST_ESCAPE.finditer(token):
        raw += token[position:match.start()].encode("utf-8")
        raw += b"\\" if match.group(1) == "\\" else bytes([int(match.group(1), 8) % 256])
        position = match.end()
    raw += token[position:].encode("utf-8")
    return raw.decode("utf-8", "replace")


def _join_path(stream: str, name: str) -> str:
    path = f"{stream}/{name}"
    return path[2:] if path.startswith("./") else path


@dataclass(frozen=True)
class ImageLink:
    """A `docker_image_hash` or `docker_image_repo+tag` link: `head_uuid` is the image's collection."""

    uuid: str
    link_class: str
    name: str
    head_uuid: str
    owner_uuid: str
    created_at: datetime.datetime
    image_timestamp: datetime.datetime | None = None
    properties: t.Mapping[str, t.Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, link: t.Mapping[str, t.Any]) -> ImageLink:
        properties = link.get("properties") or {}
        return cls(
            uuid=link["uuid"], link_class=link["link_class"], name=link["name"], head_uuid=link["head_uuid"],
            owner_uuid=link.get("owner_uuid", ""), created_at=parse_arvados_time(link["created_at"]),
            image_timestamp=parse_image_timestamp(properties.get("image_timestamp")), properties=properties,
        )

    @property
    def repo(self) -> str | None:
        return split_link_name(self)[0]

    @property
    def tag(self) -> str | None:
        return split_link_name(self)[1]


@dataclass(frozen=True)
class MigrationLink:
    """A `docker_image_migration` link: `tail_uuid` and `head_uuid` are portable data hashes.

    The server follows it from an incompatible image collection (tail) to a compatible one (head)
    only when the system user owns it (collection.rb, get_compatible_images).
    """

    uuid: str
    owner_uuid: str
    tail_uuid: str
    head_uuid: str
    created_at: datetime.datetime

    @classmethod
    def from_api(cls, link: t.Mapping[str, t.Any]) -> MigrationLink:
        return cls(
            uuid=link["uuid"], owner_uuid=link["owner_uuid"], tail_uuid=link["tail_uuid"],
            head_uuid=link["head_uuid"], created_at=parse_arvados_time(link["created_at"]),
        )


# What a collection is read with, wherever the collection reads or writes one.
COLLECTION_FIELDS = (
    "uuid", "portable_data_hash", "owner_uuid", "name", "manifest_text", "properties",
    "replication_desired", "storage_classes_desired", "is_trashed",
)


@dataclass(frozen=True)
class ImageCollection:
    """A collection that may hold a Docker image; `file_names` are the paths in its manifest."""

    uuid: str
    portable_data_hash: str
    owner_uuid: str
    name: str = ""
    file_names: tuple[str, ...] = ()
    is_trashed: bool = False
    properties: t.Mapping[str, t.Any] = field(default_factory=dict, compare=False, repr=False)
    manifest_text: str | None = field(default=None, compare=False, repr=False)
    replication_desired: int | None = field(default=None, compare=False, repr=False)
    storage_classes_desired: tuple[str, ...] = field(default=("default",), compare=False, repr=False)

    @classmethod
    def from_api(cls, collection: t.Mapping[str, t.Any]) -> ImageCollection:
        manifest_text = collection.get("manifest_text")
        file_names = collection.get("file_names")
        if not isinstance(file_names, (list, tuple)):
            file_names = manifest_file_names(manifest_text or "")
        return cls(
            uuid=collection["uuid"], portable_data_hash=collection.get("portable_data_hash", ""),
            owner_uuid=collection.get("owner_uuid", ""), name=collection.get("name") or "",
            file_names=tuple(file_names), is_trashed=bool(collection.get("is_trashed")),
            properties=collection.get("properties") or {}, manifest_text=manifest_text,
            replication_desired=collection.get("replication_desired"),
            storage_classes_desired=tuple(collection.get("storage_classes_desired") or ("default",)),
        )


def split_link_name(link: ImageLink) -> tuple[str | None, str | None]:
    """Repository and tag of a `docker_image_repo+tag` link, split at the last `:`; (None, None) otherwise."""
    if link.link_class != REPO_TAG_LINK_CLASS:
        return None, None
    repo, sep, tag = link.name.rpartition(":")
    return (repo, tag) if sep else (link.name, None)


def is_system_user_uuid(uuid: str, system_user_uuid: str | None = None) -> bool:
    """Whether `uuid` is the cluster's system user (any cluster's, when its uuid is not given)."""
    if system_user_uuid is not None:
        return uuid == system_user_uuid
    return _SYSTEM_USER_UUID.fullmatch(uuid) is not None


def system_user_uuid_of(discovery: t.Mapping[str, t.Any]) -> str | None:
    """The system user of the cluster a discovery document describes (None when it names no cluster)."""
    cluster_id = discovery.get("uuidPrefix")
    return f"{cluster_id}-tpzed-000000000000000" if cluster_id else None


def iso_time(moment: datetime.datetime | None) -> str | None:
    """A time as ISO 8601 in UTC with microseconds, for results (naive times are taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def keep_locator(text: str) -> str | None:
    """The portable data hash the server looks up when `container_image` parses as a Keep locator.

    Hints (`+A...`, `+K...`) are stripped; the rest is compared as written, so upper-case hex or a
    missing size finds nothing (Keep::Locator in sdk/ruby/lib/arvados/keep.rb).
    """
    match = _KEEP_LOCATOR.fullmatch(text)
    if match is None:
        return None
    return match.group(1) + (match.group(2) or "")
