# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""What an Arvados cluster holds about Docker images, and which image its API server picks.

The first part is pure: data classes built from API responses (plain dicts as the Python SDK returns
them) and the API server's preference order, as services/api/app/models/collection.rb implements it
(find_all_for_docker_image, get_compatible_images). Functions that read the cluster come after it.
"""

from __future__ import annotations

import datetime
import json
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import (
    ImageRefError,
    image_id_prefix_of,
    split_container_image,
)

HASH_LINK_CLASS = "docker_image_hash"
REPO_TAG_LINK_CLASS = "docker_image_repo+tag"
MIGRATION_LINK_CLASS = "docker_image_migration"
# The collection property that lets a run killed before its links find its upload again.
IMAGE_ID_PROPERTY = "docker-image-id"
# The property arv-keepdocker sets on the collections it uploads.
REPO_TAG_PROPERTY = "docker-image-repo-tag"
MATCHED_BY_PORTABLE_DATA_HASH = "portable_data_hash"
INCOMPATIBLE_ERROR = "Matching Docker image is incompatible with 'docker_image_formats' configuration."

V1_FILE_PATTERN = re.compile(r"[0-9A-Fa-f]{64}\.tar")
V2_FILE_PATTERN = re.compile(r"sha256:[0-9A-Fa-f]{64}\.tar")
ANY_FORMAT_FILE_PATTERN = re.compile(r"(?:sha256:)?[0-9A-Fa-f]{64}\.tar")

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


def _time_zone(zone: t.Optional[str]) -> datetime.tzinfo:
    if zone is None or zone in "Zz":
        return _UTC
    digits = zone[1:].replace(":", "")
    offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return datetime.timezone(-offset if zone.startswith("-") else offset)


def parse_image_timestamp(value: t.Any) -> t.Optional[datetime.datetime]:
    """A link's `image_timestamp` property, or None when missing or unreadable (the server then uses 0)."""
    try:
        return parse_arvados_time(value)
    except (ValueError, OverflowError):
        return None


def whole_seconds(moment: datetime.datetime) -> int:
    """Seconds since the epoch, rounded down, as Ruby's `Time#to_i` gives them."""
    return (moment - _EPOCH) // _ONE_SECOND


def manifest_file_names(manifest_text: str) -> t.Tuple[str, ...]:
    """Paths of the files a manifest holds, in manifest order, without empty-directory placeholders."""
    paths: t.Dict[str, None] = {}
    for line in manifest_text.splitlines():
        tokens = line.split()
        if tokens:
            paths.update(dict.fromkeys(_stream_file_paths(tokens)))
    return tuple(paths)


def _stream_file_paths(tokens: t.List[str]) -> t.Iterator[str]:
    stream = _unescape(tokens[0])
    in_file_tokens = False
    for token in tokens[1:]:
        in_file_tokens = in_file_tokens or not _KEEP_LOCATOR.fullmatch(token)
        parts = token.split(":", 2)
        if in_file_tokens and len(parts) == 3 and parts[1].isdigit():
            path = _join_path(stream, _unescape(parts[2]))
            if not (path.rpartition("/")[2] == "." and int(parts[1]) == 0):
                yield path


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
    image_timestamp: t.Optional[datetime.datetime] = None
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
    def repo(self) -> t.Optional[str]:
        return split_link_name(self)[0]

    @property
    def tag(self) -> t.Optional[str]:
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


@dataclass(frozen=True)
class ImageCollection:
    """A collection that may hold a Docker image; `file_names` are the paths in its manifest."""

    uuid: str
    portable_data_hash: str
    owner_uuid: str
    name: str = ""
    file_names: t.Tuple[str, ...] = ()
    is_trashed: bool = False
    properties: t.Mapping[str, t.Any] = field(default_factory=dict, compare=False, repr=False)
    manifest_text: t.Optional[str] = field(default=None, compare=False, repr=False)
    replication_desired: t.Optional[int] = field(default=None, compare=False, repr=False)
    storage_classes_desired: t.Tuple[str, ...] = field(default=("default",), compare=False, repr=False)

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


@dataclass(frozen=True)
class KeyedCollection:
    """A collection found by a search, with the link the server orders it by."""

    collection: ImageCollection
    link: ImageLink

    @property
    def sort_key(self) -> SortKey:
        return server_preference_key(self.link)


@dataclass(frozen=True)
class Candidate:
    """An image the server could run for a search, in server order.

    `collection` is what a container would run; it differs from `migrated_from` (the collection the
    link points at) when a migration link redirected an incompatible image. `link` is None when the
    search named a portable data hash.
    """

    collection: ImageCollection
    link: t.Optional[ImageLink]
    image_id: str
    repo: t.Optional[str] = None
    tag: t.Optional[str] = None
    migrated_from: t.Optional[ImageCollection] = None

    @property
    def portable_data_hash(self) -> str:
        return self.collection.portable_data_hash

    @property
    def sort_key(self) -> t.Optional[SortKey]:
        return None if self.link is None else server_preference_key(self.link)


def split_link_name(link: ImageLink) -> t.Tuple[t.Optional[str], t.Optional[str]]:
    """Repository and tag of a `docker_image_repo+tag` link, split at the last `:`; (None, None) otherwise."""
    if link.link_class != REPO_TAG_LINK_CLASS:
        return None, None
    repo, sep, tag = link.name.rpartition(":")
    return (repo, tag) if sep else (link.name, None)


def server_preference_key(link: ImageLink) -> SortKey:
    """The API server's sort key for a collection keyed by `link`: smaller sorts first.

    collection.rb (find_all_for_docker_image) sorts by [-image_timestamp, -created_at] in whole seconds
    (`to_i` truncates), with 0 for a missing or unreadable image_timestamp: so a timestamp at the epoch
    ties with none, and one before 1970 (Docker's zero time, year 1) sorts after links without one.
    """
    image_seconds = 0 if link.image_timestamp is None else -whole_seconds(link.image_timestamp)
    return image_seconds, -whole_seconds(link.created_at)


def readable_collections(collections: t.Iterable[ImageCollection]) -> t.Dict[str, ImageCollection]:
    """Collections by uuid, without trashed ones (the server's readable_by leaves trash out)."""
    return {collection.uuid: collection for collection in collections if not collection.is_trashed}


def keying_links(matching_links: t.Iterable[ImageLink]) -> t.Dict[str, ImageLink]:
    """For each collection (head_uuid), the matching link the server keys it by: its oldest.

    collection.rb walks the links ordered by created_at DESC and overwrites the key of each head_uuid,
    so the last one, the oldest link, wins; a newer link on the same collection changes nothing.
    """
    keyed: t.Dict[str, ImageLink] = {}
    for link in sorted(matching_links, key=lambda link: (link.created_at, link.uuid), reverse=True):
        keyed[link.head_uuid] = link
    return keyed


def order_candidates(
    matching_links: t.Iterable[ImageLink], collections: t.Iterable[ImageCollection]
) -> t.List[KeyedCollection]:
    """Readable collections that matching links point at, in the server's order (before format checks)."""
    readable = readable_collections(collections)
    keyed = keying_links(link for link in matching_links if link.head_uuid in readable)
    ordered = [KeyedCollection(readable[uuid], link) for uuid, link in keyed.items()]
    # Ruby's sort_by is not stable and the collections come unordered: ties are the server's to break
    # at random, so break them by uuid here to give the same answer every run.
    return sorted(ordered, key=lambda keyed: (keyed.sort_key, keyed.collection.uuid))


def image_file_pattern(docker_image_formats: t.Iterable[str]) -> re.Pattern[str]:
    """The image file name pattern for the cluster's `dockerImageFormats` (from the discovery document)."""
    formats = set(docker_image_formats)
    if {"v1", "v2"} <= formats:
        return ANY_FORMAT_FILE_PATTERN
    if "v2" in formats:
        return V2_FILE_PATTERN
    if "v1" in formats:
        return V1_FILE_PATTERN
    raise ValueError(f"Unrecognized configuration for docker_image_formats {sorted(formats)}")


def image_id_of(collection: ImageCollection, pattern: re.Pattern[str] = ANY_FORMAT_FILE_PATTERN) -> t.Optional[str]:
    """The image id a collection holds: its manifest has exactly one file, named as `pattern` wants.

    The server checks the file's base name only (Keep::Manifest#files puts directories in the stream).
    """
    if len(collection.file_names) != 1:
        return None
    base_name = collection.file_names[0].rpartition("/")[2]
    if not pattern.fullmatch(base_name):
        return None
    return base_name[:-len(".tar")]


_IMAGE_ID_NAME = re.compile(r"(?:sha256:)?[0-9a-f]+")


def names_image_id(link_name: str, image_id_prefix: str) -> bool:
    """Whether a hash link's name is an image id starting with `image_id_prefix` (`sha256:` optional on both)."""
    return _IMAGE_ID_NAME.fullmatch(link_name) is not None and _id_hex(link_name).startswith(_id_hex(image_id_prefix))


def same_image_id(image_id: str, other_image_id: str) -> bool:
    """Whether two image ids name the same image (`sha256:` prefix and hex case aside)."""
    return _id_hex(image_id) == _id_hex(other_image_id)


def _id_hex(image_id: str) -> str:
    return (image_id[len("sha256:"):] if image_id.startswith("sha256:") else image_id).lower()


def is_system_user_uuid(uuid: str, system_user_uuid: t.Optional[str] = None) -> bool:
    """Whether `uuid` is the cluster's system user (any cluster's, when its uuid is not given)."""
    if system_user_uuid is not None:
        return uuid == system_user_uuid
    return _SYSTEM_USER_UUID.fullmatch(uuid) is not None


def migration_targets(
    migration_links: t.Iterable[MigrationLink], system_user_uuid: t.Optional[str] = None
) -> t.Dict[str, str]:
    """Portable data hash of an incompatible image -> that of its compatible replacement.

    Only links the system user owns count; collection.rb reads them oldest first into a Hash, so the
    newest link from a given portable data hash wins.
    """
    owned = [link for link in migration_links if is_system_user_uuid(link.owner_uuid, system_user_uuid)]
    targets: t.Dict[str, str] = {}
    for link in sorted(owned, key=lambda link: (link.created_at, link.uuid)):
        targets[link.tail_uuid] = link.head_uuid
    return targets


def migration_redirects(
    collections: t.Iterable[ImageCollection],
    migration_links: t.Iterable[MigrationLink] = (),
    system_user_uuid: t.Optional[str] = None,
) -> t.Dict[str, ImageCollection]:
    """Portable data hash of an incompatible image -> the readable collection its migration link leads to."""
    targets = migration_targets(migration_links, system_user_uuid)
    # The server picks any readable collection with the target hash; they all hold the same content.
    readable = sorted(readable_collections(collections).values(), key=_uuid)
    by_hash = {collection.portable_data_hash: collection for collection in readable}
    return {tail: by_hash[head] for tail, head in targets.items() if head in by_hash}


def compatible_candidates(
    ordered: t.Iterable[KeyedCollection],
    pattern: re.Pattern[str],
    redirects: t.Optional[t.Mapping[str, ImageCollection]] = None,
) -> t.List[Candidate]:
    """Keep the collections whose image has a supported format, following migration redirects for the rest."""
    candidates = (_compatible_candidate(keyed.collection, keyed.link, pattern, redirects or {}) for keyed in ordered)
    return [candidate for candidate in candidates if candidate is not None]


def _uuid(collection: ImageCollection) -> str:
    return collection.uuid


def _compatible_candidate(
    collection: ImageCollection,
    link: t.Optional[ImageLink],
    pattern: re.Pattern[str],
    redirects: t.Mapping[str, ImageCollection],
) -> t.Optional[Candidate]:
    repo, tag = split_link_name(link) if link is not None else (None, None)
    image_id = image_id_of(collection, pattern)
    if image_id is not None:
        return Candidate(collection, link, image_id, repo, tag)
    target = redirects.get(collection.portable_data_hash)
    target_image_id = None if target is None else image_id_of(target, pattern)
    if target is None or target_image_id is None:
        return None
    return Candidate(target, link, target_image_id, repo, tag, migrated_from=collection)


def keep_locator(text: str) -> t.Optional[str]:
    """The portable data hash the server looks up when `container_image` parses as a Keep locator.

    Hints (`+A...`, `+K...`) are stripped; the rest is compared as written, so upper-case hex or a
    missing size finds nothing (Keep::Locator in sdk/ruby/lib/arvados/keep.rb).
    """
    match = _KEEP_LOCATOR.fullmatch(text)
    if match is None:
        return None
    return match.group(1) + (match.group(2) or "")


def sql_like_matches(pattern: str, text: str) -> bool:
    """Whether `text` matches the SQL LIKE `pattern` (`%`, `_` and `\\` escapes; case-sensitive)."""
    regex = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            regex.append(re.escape(next(chars, "\\")))
        else:
            regex.append({"%": ".*", "_": "."}.get(char) or re.escape(char))
    return re.fullmatch("".join(regex), text, re.DOTALL) is not None


def matching_links(
    term: str, tag: str, links: t.Iterable[ImageLink], collections: t.Iterable[ImageCollection]
) -> t.Tuple[str, t.List[ImageLink]]:
    """The links the server finds for a split search: repo+tag links named `term:tag` on readable
    collections, or if there are none, hash links whose name is LIKE `term%` (its `_` and `%` are
    wildcards: the server passes the term unescaped). Returns the link class searched and the links.
    """
    readable = readable_collections(collections)
    usable = [link for link in links if link.head_uuid in readable]
    repo_tag_name = f"{term}:{tag}"
    repo_tag_links = [
        link for link in usable if link.link_class == REPO_TAG_LINK_CLASS and link.name == repo_tag_name
    ]
    if repo_tag_links:
        return REPO_TAG_LINK_CLASS, repo_tag_links
    hash_links = [
        link for link in usable if link.link_class == HASH_LINK_CLASS and sql_like_matches(f"{term}%", link.name)
    ]
    return HASH_LINK_CLASS, hash_links


@dataclass(frozen=True)
class ServerChoice:
    """What the API server resolves a `container_image` to: `candidates` in its order, the first wins.

    `matched_by` is the link class that matched, MATCHED_BY_PORTABLE_DATA_HASH, or None when nothing
    matched; `error` is the server's complaint when it would refuse the container request.
    """

    container_image: str
    matched_by: t.Optional[str]
    candidates: t.Tuple[Candidate, ...] = ()
    error: t.Optional[str] = None

    @property
    def winner(self) -> t.Optional[Candidate]:
        return self.candidates[0] if self.candidates and self.error is None else None

    @property
    def portable_data_hash(self) -> t.Optional[str]:
        return None if self.winner is None else self.winner.portable_data_hash

    @property
    def tied_with_winner(self) -> t.Tuple[Candidate, ...]:
        """Other candidates with the winner's sort key and different content: the server may pick any."""
        winner = self.winner
        if winner is None or winner.sort_key is None:
            return ()
        return tuple(
            candidate for candidate in self.candidates[1:]
            if candidate.sort_key == winner.sort_key and candidate.portable_data_hash != winner.portable_data_hash
        )


def server_choice(
    container_image: str,
    links: t.Iterable[ImageLink],
    collections: t.Iterable[ImageCollection],
    docker_image_formats: t.Iterable[str],
    migration_links: t.Iterable[MigrationLink] = (),
    system_user_uuid: t.Optional[str] = None,
) -> ServerChoice:
    """Resolve `container_image` as the API server would for a container request.

    `links` are the image links and `collections` the collections the requesting token can read.
    Federation is not modelled: a portable data hash missing here is reported as not found.
    """
    collections = list(collections)
    rules = _format_rules(docker_image_formats, collections, migration_links, system_user_uuid)
    if isinstance(rules, str):
        return ServerChoice(container_image, None, (), rules)
    pattern, redirects = rules
    portable_data_hash = keep_locator(container_image)
    if portable_data_hash is not None:
        return _choice_by_portable_data_hash(container_image, portable_data_hash, collections, pattern, redirects)
    term, tag = split_container_image(container_image)
    link_class, found = matching_links(term, tag, links, collections)
    return _ranked_choice(container_image, link_class, found, collections, pattern, redirects)


def image_id_choice(
    container_image: str,
    image_id_prefix: str,
    links: t.Iterable[ImageLink],
    collections: t.Iterable[ImageCollection],
    docker_image_formats: t.Iterable[str],
    migration_links: t.Iterable[MigrationLink] = (),
    system_user_uuid: t.Optional[str] = None,
) -> ServerChoice:
    """The collections holding the image `image_id_prefix` (`sha256:<hex>`), in the server's order.

    The server never selects an image by id (`sha256:<id>` splits at its first `:`); this ranks the
    collections whose hash link names that id, as list_images_in_arv finds them, by the server's rules
    (oldest link per collection, whole seconds, supported formats, migration links). Hash links of v1
    images name the id without `sha256:`, so both forms count.
    """
    collections = list(collections)
    rules = _format_rules(docker_image_formats, collections, migration_links, system_user_uuid)
    if isinstance(rules, str):
        return ServerChoice(container_image, None, (), rules)
    pattern, redirects = rules
    readable = readable_collections(collections)
    found = [
        link for link in links
        if link.link_class == HASH_LINK_CLASS and link.head_uuid in readable and names_image_id(link.name, image_id_prefix)
    ]
    return _ranked_choice(container_image, HASH_LINK_CLASS, found, collections, pattern, redirects)


def _format_rules(
    docker_image_formats: t.Iterable[str],
    collections: t.List[ImageCollection],
    migration_links: t.Iterable[MigrationLink],
    system_user_uuid: t.Optional[str],
) -> t.Union[str, t.Tuple[t.Pattern[str], t.Dict[str, ImageCollection]]]:
    """The file name pattern of the supported formats and the migration redirects, or the server's refusal."""
    try:
        pattern = image_file_pattern(docker_image_formats)
    except ValueError as error:
        return str(error)
    return pattern, migration_redirects(collections, migration_links, system_user_uuid)


def _ranked_choice(
    container_image: str,
    link_class: str,
    found: t.List[ImageLink],
    collections: t.List[ImageCollection],
    pattern: re.Pattern[str],
    redirects: t.Mapping[str, ImageCollection],
) -> ServerChoice:
    ordered = order_candidates(found, collections)
    candidates = tuple(compatible_candidates(ordered, pattern, redirects))
    if not ordered:
        return ServerChoice(container_image, None, (), _not_found(container_image))
    if not candidates:
        return ServerChoice(container_image, link_class, (), INCOMPATIBLE_ERROR)
    return ServerChoice(container_image, link_class, candidates)


def _choice_by_portable_data_hash(
    container_image: str,
    portable_data_hash: str,
    collections: t.List[ImageCollection],
    pattern: re.Pattern[str],
    redirects: t.Mapping[str, ImageCollection],
) -> ServerChoice:
    readable = sorted(readable_collections(collections).values(), key=_uuid)
    found = [collection for collection in readable if collection.portable_data_hash == portable_data_hash]
    candidate = _compatible_candidate(found[0], None, pattern, redirects) if found else None
    if candidate is None:
        matched_by = MATCHED_BY_PORTABLE_DATA_HASH if found else None
        return ServerChoice(container_image, matched_by, (), _not_found(container_image))
    return ServerChoice(container_image, MATCHED_BY_PORTABLE_DATA_HASH, (candidate,))


def _not_found(container_image: str) -> str:
    # Wording of services/api/app/models/container.rb (resolve_container_image).
    return f"docker image {json.dumps(container_image)} not found"


# ---- Lookup terms: what a user asks for, and how many reads that takes ----------------------------------

TERM_NAME = "name"
TERM_IMAGE_ID = "image_id"
TERM_PORTABLE_DATA_HASH = "portable_data_hash"
FULL_IMAGE_ID_LENGTH = len("sha256:") + 64


@dataclass(frozen=True)
class LookupTerm:
    """One string to resolve: a container image name, an image id (prefix) or a portable data hash.

    `image_id_prefix` (`sha256:<hex>`) is set for TERM_IMAGE_ID, `portable_data_hash` for
    TERM_PORTABLE_DATA_HASH; a TERM_NAME is resolved exactly as the server reads `container_image`.
    """

    text: str
    kind: str
    image_id_prefix: t.Optional[str] = None
    portable_data_hash: t.Optional[str] = None

    @property
    def repo_tag_name(self) -> str:
        """The `docker_image_repo+tag` link name the server looks for (split at the first `:`)."""
        term, tag = split_container_image(self.text)
        return f"{term}:{tag}"

    @property
    def hash_name_pattern(self) -> str:
        """The LIKE pattern of the server's fallback to `docker_image_hash` links."""
        return split_container_image(self.text)[0] + "%"

    @property
    def is_full_image_id(self) -> bool:
        return self.image_id_prefix is not None and len(self.image_id_prefix) == FULL_IMAGE_ID_LENGTH


def server_term(container_image: str) -> LookupTerm:
    """A container_image string as the server reads it: a portable data hash, or else a name."""
    portable_data_hash = keep_locator(container_image)
    if portable_data_hash is not None:
        return LookupTerm(container_image, TERM_PORTABLE_DATA_HASH, portable_data_hash=portable_data_hash)
    return LookupTerm(container_image, TERM_NAME)


def lookup_term(text: t.Any) -> LookupTerm:
    """Classify what a user asks for; image ids (`sha256:<hex>`, or 12 to 64 bare hex digits) are set apart.

    Raises ValueError, worded for the user, for what cannot name an image.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is a {type(text).__name__}, not a string naming an image")
    if not text or any(char.isspace() for char in text):
        raise ValueError(f"{text!r} is empty or holds whitespace; give repo:tag, an image id or a portable data hash")
    try:
        image_id_prefix = image_id_prefix_of(text)
    except ImageRefError:
        raise ValueError(
            f"{text!r} is not an image id: after 'sha256:' give 4 to 64 lowercase hex digits"
        ) from None
    if image_id_prefix is not None:
        return LookupTerm(text, TERM_IMAGE_ID, image_id_prefix=image_id_prefix)
    return server_term(text)


def link_names_to_read(terms: t.Iterable[LookupTerm]) -> t.List[str]:
    """Link names that resolve the terms exactly: repo+tag names, and full image ids in both forms."""
    terms = list(terms)
    names = {term.repo_tag_name for term in terms if term.kind == TERM_NAME}
    for term in terms:
        if term.is_full_image_id and term.image_id_prefix:
            names.update(_image_id_forms(term.image_id_prefix))
    return sorted(names)


def _image_id_forms(image_id_prefix: str) -> t.Tuple[str, str]:
    # v2 hash links name `sha256:<hex>`; v1 ones the bare hex.
    return image_id_prefix, _id_hex(image_id_prefix)


def hash_patterns_to_read(
    terms: t.Iterable[LookupTerm], links: t.Iterable[ImageLink], collections: t.Iterable[ImageCollection]
) -> t.List[str]:
    """LIKE patterns of hash links still needed: names with no repo+tag link on a readable collection fall
    back to hash links, as the server does; image id prefixes are read by prefix."""
    terms = list(terms)
    readable = readable_collections(collections)
    named = {link.name for link in links if link.link_class == REPO_TAG_LINK_CLASS and link.head_uuid in readable}
    patterns = {term.hash_name_pattern for term in terms if term.kind == TERM_NAME and term.repo_tag_name not in named}
    for term in terms:
        if term.kind == TERM_IMAGE_ID and term.image_id_prefix and not term.is_full_image_id:
            patterns.update(f"{form}%" for form in _image_id_forms(term.image_id_prefix))
    return sorted(patterns)


def choice_for_term(
    term: LookupTerm,
    links: t.Iterable[ImageLink],
    collections: t.Iterable[ImageCollection],
    docker_image_formats: t.Iterable[str],
    migration_links: t.Iterable[MigrationLink] = (),
    system_user_uuid: t.Optional[str] = None,
) -> ServerChoice:
    """The server's choice for a name or portable data hash; the collections holding an image id."""
    if term.kind == TERM_IMAGE_ID and term.image_id_prefix is not None:
        return image_id_choice(term.text, term.image_id_prefix, links, collections, docker_image_formats,
                               migration_links, system_user_uuid)
    return server_choice(term.text, links, collections, docker_image_formats, migration_links, system_user_uuid)


def system_user_uuid_of(discovery: t.Mapping[str, t.Any]) -> t.Optional[str]:
    """The system user of the cluster a discovery document describes (None when it names no cluster)."""
    cluster_id = discovery.get("uuidPrefix")
    return f"{cluster_id}-tpzed-000000000000000" if cluster_id else None


def iso_time(moment: t.Optional[datetime.datetime]) -> t.Optional[str]:
    """A time as ISO 8601 in UTC with microseconds, for results (naive times are taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def full_image_id(image_id: str) -> str:
    """`sha256:<hex>` for an id with or without its prefix (v1 file names have none)."""
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"


RESOLVES = "resolves"
AMBIGUOUS = "ambiguous"
OTHER_IMAGE = "other_image"
UNRESOLVABLE = "unresolvable"


@dataclass(frozen=True)
class Resolution:
    """Whether `repo_tag`, used as a container image, runs `image_id`, for the module's report.

    `status` is RESOLVES, AMBIGUOUS (a tie in whole seconds the server breaks at random, with this
    image in it), OTHER_IMAGE (another image wins) or UNRESOLVABLE (the server would refuse).
    """

    repo_tag: str
    image_id: str
    choice: ServerChoice

    @property
    def winner(self) -> t.Optional[Candidate]:
        return self.choice.winner

    @property
    def status(self) -> str:
        winner = self.choice.winner
        if winner is None:
            return UNRESOLVABLE
        contenders = (winner,) + self.choice.tied_with_winner
        holds_image = [same_image_id(candidate.image_id, self.image_id) for candidate in contenders]
        if all(holds_image):
            return RESOLVES
        return AMBIGUOUS if any(holds_image) else OTHER_IMAGE

    @property
    def resolves_to_image(self) -> bool:
        return self.status == RESOLVES

    @property
    def message(self) -> str:
        winner = self.choice.winner
        status = self.status
        if winner is None:
            return f"{self.repo_tag} does not resolve: {self.choice.error}"
        if status == RESOLVES:
            return f"{self.repo_tag} resolves to {self.image_id} (collection {winner.collection.uuid})."
        if status == AMBIGUOUS:
            image_ids = sorted({candidate.image_id for candidate in (winner,) + self.choice.tied_with_winner})
            return (
                f"{self.repo_tag} is ambiguous: images {', '.join(image_ids)} have the same image timestamp and link "
                "creation time to the second, so the server may run either."
            )
        return (
            f"{self.repo_tag} resolves to {winner.image_id} (collection {winner.collection.uuid}), not {self.image_id}: "
            f"{_why_it_wins(winner, self.own_candidate)}."
        )

    @property
    def own_candidate(self) -> t.Optional[Candidate]:
        """The best placed candidate holding `image_id`, if the server considers it at all."""
        for candidate in self.choice.candidates:
            if same_image_id(candidate.image_id, self.image_id):
                return candidate
        return None


def _why_it_wins(winner: Candidate, own: t.Optional[Candidate]) -> str:
    if own is None or winner.link is None or own.link is None:
        return "no readable collection of a supported format holds this image under that name"
    if winner.sort_key[0] != own.sort_key[0]:
        return (
            f"its image timestamp (build time) {_time_text(winner.link.image_timestamp)} beats this image's "
            f"{_time_text(own.link.image_timestamp)}; the server prefers the newest build, not the newest upload"
        )
    return (
        f"both have the same image timestamp to the second and its oldest link was created later "
        f"({_time_text(winner.link.created_at)} against {_time_text(own.link.created_at)})"
    )


def _time_text(moment: t.Optional[datetime.datetime]) -> str:
    return "none" if moment is None else moment.isoformat()


def resolution_for(
    repo_tag: str,
    image_id: str,
    links: t.Iterable[ImageLink],
    collections: t.Iterable[ImageCollection],
    docker_image_formats: t.Iterable[str],
    migration_links: t.Iterable[MigrationLink] = (),
    system_user_uuid: t.Optional[str] = None,
) -> Resolution:
    """Whether a container request for `repo_tag` would run `image_id`, and which image wins otherwise."""
    choice = server_choice(repo_tag, links, collections, docker_image_formats, migration_links, system_user_uuid)
    return Resolution(repo_tag, image_id, choice)


# ---- What the cluster holds: reads through the API (I/O below this line) ----------------------------

# (link_class, name, head_uuid): a link as far as the plan needs to know it exists.
LinkKey = t.Tuple[str, str, str]
COLLECTION_FIELDS = (
    "uuid", "portable_data_hash", "owner_uuid", "name", "manifest_text", "properties",
    "replication_desired", "storage_classes_desired", "is_trashed",
)
LINK_FIELDS = ("uuid", "link_class", "name", "head_uuid", "tail_uuid", "owner_uuid", "created_at", "properties")
PAGE_SIZE = 1000
# Keeps a GET for `uuid in [...]` well under the 2048 characters where the client switches to POST.
UUIDS_PER_REQUEST = 40


@dataclass(frozen=True)
class ImageHoldings:
    """What the cluster holds of one image id, from one token's point of view."""

    in_project: t.Optional[ImageCollection] = None
    project_links: t.AbstractSet[LinkKey] = frozenset()
    readable_elsewhere: t.Optional[ImageCollection] = None


class CatalogReader:
    """Reads image links and collections through one ArvadosClient, fetching each collection once."""

    def __init__(self, client: t.Any) -> None:
        self.client = client
        self._collections: t.Dict[str, t.Optional[ImageCollection]] = {}

    def upstream_listing(self, image_name: t.Optional[str] = None, image_tag: t.Optional[str] = None,
                         project_uuid: t.Optional[str] = None) -> t.List[t.Tuple[str, t.Dict[str, t.Any]]]:
        """`arvados.commands.keepdocker.list_images_in_arv`, the listing arv-keepdocker itself relies on."""
        from arvados.commands.keepdocker import list_images_in_arv  # pylint: disable=import-outside-toplevel
        return self.client.call(list_images_in_arv, self.client.api, self.client.options.num_retries,
                                image_name=image_name, image_tag=image_tag, project_uuid=project_uuid)

    def links(self, filters: t.List[t.Any]) -> t.List[ImageLink]:
        return [ImageLink.from_api(item) for item in self._list_all("links", filters, LINK_FIELDS)]

    def migration_links(self, portable_data_hashes: t.Iterable[str]) -> t.List[MigrationLink]:
        wanted = sorted(set(portable_data_hashes))
        filters = [["link_class", "=", MIGRATION_LINK_CLASS], ["tail_uuid", "in", wanted]]
        return [MigrationLink.from_api(item) for item in self._list_all("links", filters, LINK_FIELDS)] if wanted else []

    def collections(self, uuids: t.Iterable[str]) -> t.List[ImageCollection]:
        """The readable, untrashed collections among `uuids` (each fetched at most once per reader)."""
        uuids = list(dict.fromkeys(uuids))
        missing = [uuid for uuid in uuids if uuid not in self._collections]
        for start in range(0, len(missing), UUIDS_PER_REQUEST):
            batch = missing[start:start + UUIDS_PER_REQUEST]
            found = {item["uuid"]: ImageCollection.from_api(item)
                     for item in self._list_all("collections", [["uuid", "in", batch]], COLLECTION_FIELDS)}
            self._collections.update({uuid: found.get(uuid) for uuid in batch})
        return [self._collections[uuid] for uuid in uuids if self._collections[uuid] is not None]

    def collections_by_portable_data_hash(self, portable_data_hashes: t.Iterable[str]) -> t.List[ImageCollection]:
        wanted = sorted(set(portable_data_hashes))
        if not wanted:
            return []
        items = self._list_all("collections", [["portable_data_hash", "in", wanted]], COLLECTION_FIELDS)
        return [ImageCollection.from_api(item) for item in items]

    def forget(self, uuids: t.Iterable[str]) -> None:
        """Drop cached collections that this run has changed."""
        for uuid in uuids:
            self._collections.pop(uuid, None)

    def _list_all(self, resource: str, filters: t.List[t.Any], select: t.Sequence[str]) -> t.List[t.Dict[str, t.Any]]:
        """Every row matching `filters`, a page of PAGE_SIZE at a time (one request for most reads)."""
        rows: t.List[t.Dict[str, t.Any]] = []
        while True:
            request = getattr(self.client.api, resource)().list(
                filters=filters, select=list(select), order=["created_at asc", "uuid asc"],
                limit=PAGE_SIZE, offset=len(rows), count="none",
            )
            page = self.client.execute(request)["items"]
            rows.extend(page)
            if len(page) < PAGE_SIZE:
                return rows

    # ---- the server's choice --------------------------------------------------------------------------

    def server_choice(self, container_image: str, docker_image_formats: t.Sequence[str],
                      system_user_uuid: t.Optional[str] = None) -> ServerChoice:
        """What a container request for `container_image` would run, as the API server decides it."""
        return self.server_choices([container_image], docker_image_formats, system_user_uuid)[container_image]

    def server_choices(self, container_images: t.Iterable[str], docker_image_formats: t.Sequence[str],
                       system_user_uuid: t.Optional[str] = None,
                       project_uuid: t.Optional[str] = None) -> t.Dict[str, ServerChoice]:
        """What container requests for each string would run, read together (see `choices`)."""
        terms = [server_term(container_image) for container_image in container_images]
        return self.choices(terms, docker_image_formats, system_user_uuid, project_uuid)

    def choices(self, terms: t.Iterable[LookupTerm], docker_image_formats: t.Sequence[str],
                system_user_uuid: t.Optional[str] = None,
                project_uuid: t.Optional[str] = None) -> t.Dict[str, ServerChoice]:
        """Each term's choice (by its text), reading what all the terms need together.

        Requests: one for the links the terms name, one per UUIDS_PER_REQUEST collections those point at,
        one for portable data hashes, one per hash-link pattern that names without a readable repo+tag
        link and image id prefixes need, and two for migration links when a collection's format is not
        supported. With `project_uuid`, only links and collections that project owns count.
        """
        terms = list(terms)
        owner_filter = [["owner_uuid", "=", project_uuid]] if project_uuid else []
        names = link_names_to_read(terms)
        links = self.links([["link_class", "in", [REPO_TAG_LINK_CLASS, HASH_LINK_CLASS]], ["name", "in", names]]
                           + owner_filter) if names else []
        collections = self._owned(self.collections(link.head_uuid for link in links), project_uuid)
        for pattern in hash_patterns_to_read(terms, links, collections):
            found = self.links([["link_class", "=", HASH_LINK_CLASS], ["name", "like", pattern]] + owner_filter)
            links += found
            collections += self._owned(self.collections(link.head_uuid for link in found), project_uuid)
        hashes = [term.portable_data_hash for term in terms if term.portable_data_hash]
        collections += self._owned(self.collections_by_portable_data_hash(hashes), project_uuid)
        migrations = self._migrations_for(collections, docker_image_formats, system_user_uuid)
        collections += self._owned(self.collections_by_portable_data_hash(link.head_uuid for link in migrations), project_uuid)
        links = list({link.uuid: link for link in links}.values())
        collections = list({collection.uuid: collection for collection in collections}.values())
        return {
            term.text: choice_for_term(term, links, collections, docker_image_formats, migrations, system_user_uuid)
            for term in terms
        }

    def _migrations_for(self, collections: t.List[ImageCollection], docker_image_formats: t.Sequence[str],
                        system_user_uuid: t.Optional[str]) -> t.List[MigrationLink]:
        """The system user's migration links away from collections whose image format is not supported."""
        try:
            pattern = image_file_pattern(docker_image_formats)
        except ValueError:
            return []
        unsupported = [c.portable_data_hash for c in collections if image_id_of(c, pattern) is None]
        migrations = self.migration_links(unsupported)
        return [link for link in migrations if is_system_user_uuid(link.owner_uuid, system_user_uuid)]

    @staticmethod
    def _owned(collections: t.List[ImageCollection], project_uuid: t.Optional[str]) -> t.List[ImageCollection]:
        return [c for c in collections if project_uuid is None or c.owner_uuid == project_uuid]

    def choice_inputs(self, container_image: str) -> t.Tuple[t.List[ImageLink], t.List[ImageCollection]]:
        """The links and collections the server would consider for one container_image string."""
        portable_data_hash = keep_locator(container_image)
        if portable_data_hash is not None:
            return [], self.collections_by_portable_data_hash([portable_data_hash])
        term, tag = split_container_image(container_image)
        links = self.links([["link_class", "=", REPO_TAG_LINK_CLASS], ["name", "=", f"{term}:{tag}"]])
        collections = self.collections(link.head_uuid for link in links)
        if not collections:
            links = self.links([["link_class", "=", HASH_LINK_CLASS], ["name", "like", f"{term}%"]])
            collections = self.collections(link.head_uuid for link in links)
        return links, collections

    # ---- one image's holdings -------------------------------------------------------------------------

    def image_holdings(self, image_id: str, repo_tag: t.Optional[str], project_uuid: str) -> ImageHoldings:
        """Where the cluster holds `image_id`: in the project (with which links), or readable elsewhere.

        As arv-keepdocker does: first `repo:tag` in the project through the upstream listing, and only when
        that does not hold this image, the image id across what the token can read.
        """
        if repo_tag:
            repo, _sep, tag = repo_tag.rpartition(":")
            held = [uuid for uuid, info in self.upstream_listing(repo, tag, project_uuid) if same_image_id(info["dockerhash"], image_id)]
            in_project = self.collections(held[:1])
            if in_project:
                links = {(HASH_LINK_CLASS, image_id, held[0]), (REPO_TAG_LINK_CLASS, repo_tag, held[0])}
                return ImageHoldings(in_project=in_project[0], project_links=frozenset(links))
        holding = self.collections(uuid for uuid, _info in self.upstream_listing(image_id))
        in_project = [c for c in holding if c.owner_uuid == project_uuid] or self._unlinked_uploads(image_id, project_uuid)
        elsewhere = [c for c in holding if c.owner_uuid != project_uuid]
        if not in_project:
            return ImageHoldings(readable_elsewhere=elsewhere[0] if elsewhere else None)
        return ImageHoldings(in_project=in_project[0], project_links=self._project_links(in_project[0].uuid, project_uuid),
                             readable_elsewhere=elsewhere[0] if elsewhere else None)

    def _unlinked_uploads(self, image_id: str, project_uuid: str) -> t.List[ImageCollection]:
        """Collections a run saved in the project before it was stopped short of creating their links."""
        filters = [["owner_uuid", "=", project_uuid], [f"properties.{IMAGE_ID_PROPERTY}", "=", image_id]]
        found = [ImageCollection.from_api(item) for item in self._list_all("collections", filters, COLLECTION_FIELDS)]
        self._collections.update({collection.uuid: collection for collection in found})
        return found

    def _project_links(self, collection_uuid: str, project_uuid: str) -> t.FrozenSet[LinkKey]:
        filters = [["head_uuid", "=", collection_uuid], ["owner_uuid", "=", project_uuid],
                   ["link_class", "in", [HASH_LINK_CLASS, REPO_TAG_LINK_CLASS]]]
        return frozenset((link.link_class, link.name, link.head_uuid) for link in self.links(filters))
