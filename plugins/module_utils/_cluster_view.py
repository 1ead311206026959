# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""ClusterView: what one read of an Arvados cluster returned, indexed once for the server's rules.

The API server reads what a container request names from the links and collections the requesting token can read
(services/api/app/models/collection.rb, find_all_for_docker_image and get_compatible_images). A ClusterView holds
that part of the cluster, as CatalogReader read it, and indexes it on first use, so answering T terms over N images
costs O(N + T log N). Pure code.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId
from ansible_collections.arvados.cluster.plugins.module_utils._records import (
    HASH_LINK_CLASS,
    REPO_TAG_LINK_CLASS,
    ImageCollection,
    ImageLink,
    MigrationLink,
    is_system_user_uuid,
)

V1_FILE_PATTERN = re.compile(r"[0-9A-Fa-f]{64}\.tar")
V2_FILE_PATTERN = re.compile(r"sha256:[0-9A-Fa-f]{64}\.tar")
ANY_FORMAT_FILE_PATTERN = re.compile(r"(?:sha256:)?[0-9A-Fa-f]{64}\.tar")
_LIKE_WILDCARDS = re.compile(r"[%_\\]")


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


def image_id_of(collection: ImageCollection, pattern: re.Pattern[str] = ANY_FORMAT_FILE_PATTERN) -> str | None:
    """The image id a collection holds: its manifest has exactly one file, named as `pattern` wants.

    The server checks the file's base name only (Keep::Manifest#files puts directories in the stream).
    """
    if len(collection.file_names) != 1:
        return None
    base_name = collection.file_names[0].rpartition("/")[2]
    if not pattern.fullmatch(base_name):
        return None
    return base_name[:-len(".tar")]


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


def like_prefix(pattern: str) -> str:
    """The literal text that every name matching the SQL LIKE `pattern` starts with."""
    return _LIKE_WILDCARDS.split(pattern, 1)[0]


def covering_prefixes(patterns: t.Iterable[str], at_most: int) -> list[str]:
    """At most `at_most` literal prefixes, none a prefix of another, such that every match of `patterns` starts with one.

    Reading `name LIKE '<prefix>%'` for each returns a superset of the matches of every pattern in a fixed number of
    requests; adjacent prefixes (in sorted order) sharing the longest common start are merged first, so each read
    stays as narrow as the count allows. The empty prefix reads every name.
    """
    prefixes = _outermost({like_prefix(pattern) for pattern in patterns})
    while len(prefixes) > max(at_most, 1):
        shared = [len(os.path.commonprefix(pair)) for pair in zip(prefixes, prefixes[1:])]
        at = shared.index(max(shared))
        prefixes = _outermost(prefixes[:at] + [prefixes[at][:shared[at]]] + prefixes[at + 2:])
    return prefixes


def _outermost(prefixes: t.Iterable[str]) -> list[str]:
    """The sorted prefixes that no other one starts (names starting with one prefix sort right after it)."""
    kept: list[str] = []
    for prefix in sorted(prefixes):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept


def like_positions(pattern: str, sorted_names: t.Sequence[str]) -> t.Iterator[int]:
    """Positions in `sorted_names` of the names matching the SQL LIKE `pattern`, found by bisecting its prefix."""
    prefix = like_prefix(pattern)
    for position in range(bisect.bisect_left(sorted_names, prefix), len(sorted_names)):
        if not sorted_names[position].startswith(prefix):
            return
        if pattern == prefix + "%" or sql_like_matches(pattern, sorted_names[position]):
            yield position


def names_like_any(patterns: t.Iterable[str], names: t.Iterable[str]) -> set[str]:
    """The `names` that match at least one of the SQL LIKE `patterns`."""
    sorted_names = sorted(set(names))
    return {sorted_names[position] for pattern in set(patterns) for position in like_positions(pattern, sorted_names)}


def migration_targets(migration_links: t.Iterable[MigrationLink], system_user_uuid: str | None = None) -> dict[str, str]:
    """Portable data hash of an incompatible image -> that of its compatible replacement.

    Only links the system user owns count; collection.rb reads them oldest first into a Hash, so the
    newest link from a given portable data hash wins.
    """
    owned = [link for link in migration_links if is_system_user_uuid(link.owner_uuid, system_user_uuid)]
    targets: dict[str, str] = {}
    for link in sorted(owned, key=lambda link: (link.created_at, link.uuid)):
        targets[link.tail_uuid] = link.head_uuid
    return targets


@dataclass(frozen=True)
class ClusterView:
    """Image links, collections and migration links one token can read, with the cluster's image formats.

    `hidden_migrations` is True when the token cannot read migration links (only admins can) and the view holds an
    image of an unsupported format, so the server might follow a link this view lacks.
    """

    links: tuple[ImageLink, ...] = ()
    collections: tuple[ImageCollection, ...] = ()
    docker_image_formats: tuple[str, ...] = ()
    migration_links: tuple[MigrationLink, ...] = ()
    system_user_uuid: str | None = None
    hidden_migrations: bool = False

    def with_added(self, links: t.Iterable[ImageLink] = (), collections: t.Iterable[ImageCollection] = ()) -> ClusterView:
        """The view after `links` and `collections` are made (check mode's prediction)."""
        return ClusterView(self.links + tuple(links), self.collections + tuple(collections), self.docker_image_formats,
                           self.migration_links, self.system_user_uuid, self.hidden_migrations)

    def without_links(self, uuids: t.AbstractSet[str]) -> ClusterView:
        """The view after the links `uuids` are deleted (check mode's prediction)."""
        return ClusterView(tuple(link for link in self.links if link.uuid not in uuids), self.collections, self.docker_image_formats,
                           self.migration_links, self.system_user_uuid, self.hidden_migrations)

    # ---- the server's format rules --------------------------------------------------------------------------

    @functools.cached_property
    def format_error(self) -> str | None:
        """The server's refusal when `dockerImageFormats` names no format it knows."""
        try:
            image_file_pattern(self.docker_image_formats)
        except ValueError as error:
            return str(error)
        return None

    @functools.cached_property
    def file_pattern(self) -> re.Pattern[str]:
        return image_file_pattern(self.docker_image_formats)

    def supported_image_id(self, collection: ImageCollection) -> str | None:
        """The image id `collection` holds in a format the cluster supports."""
        return image_id_of(collection, self.file_pattern)

    # ---- indexes, built on first use ------------------------------------------------------------------------

    @functools.cached_property
    def readable(self) -> dict[str, ImageCollection]:
        """Collections by uuid, without trashed ones (the server's readable_by leaves trash out)."""
        return {collection.uuid: collection for collection in self.collections if not collection.is_trashed}

    @functools.cached_property
    def _usable_links(self) -> tuple[ImageLink, ...]:
        unique = {link.uuid: link for link in self.links if link.head_uuid in self.readable}
        return tuple(unique.values())

    @functools.cached_property
    def _repo_tag_links(self) -> dict[str, list[ImageLink]]:
        by_name: dict[str, list[ImageLink]] = {}
        for link in self._usable_links:
            if link.link_class == REPO_TAG_LINK_CLASS:
                by_name.setdefault(link.name, []).append(link)
        return by_name

    @functools.cached_property
    def _hash_links_by_name(self) -> tuple[list[str], list[ImageLink]]:
        """Hash links sorted by name, with their names, for prefix searches by bisection."""
        hash_links = sorted((link for link in self._usable_links if link.link_class == HASH_LINK_CLASS), key=lambda link: link.name)
        return [link.name for link in hash_links], hash_links

    @functools.cached_property
    def _by_portable_data_hash(self) -> dict[str, ImageCollection]:
        # The server picks any readable collection with the hash; they all hold the same content: take the first uuid.
        by_hash: dict[str, ImageCollection] = {}
        for collection in sorted(self.readable.values(), key=lambda collection: collection.uuid):
            by_hash.setdefault(collection.portable_data_hash, collection)
        return by_hash

    @functools.cached_property
    def redirects(self) -> dict[str, ImageCollection]:
        """Portable data hash of an incompatible image -> the readable collection its migration link leads to."""
        targets = migration_targets(self.migration_links, self.system_user_uuid)
        return {tail: self._by_portable_data_hash[head] for tail, head in targets.items() if head in self._by_portable_data_hash}

    # ---- searches -------------------------------------------------------------------------------------------

    def repo_tag_links(self, name: str) -> list[ImageLink]:
        """Repo+tag links named exactly `name` on readable collections."""
        return self._repo_tag_links.get(name, [])

    def hash_links_like(self, pattern: str) -> list[ImageLink]:
        """Hash links on readable collections whose name matches the SQL LIKE `pattern`, as the server filters them."""
        names, hash_links = self._hash_links_by_name
        return [hash_links[position] for position in like_positions(pattern, names)]

    def hash_links_for_id(self, image_id: ImageId) -> list[ImageLink]:
        """Hash links naming an image id that starts with `image_id`, in either spelling."""
        found: list[ImageLink] = []
        for link_name_prefix in image_id.link_names:
            found += [link for link in self.hash_links_like(link_name_prefix + "%") if _names_id(link.name)]
        return found

    def collection_with_hash(self, portable_data_hash: str) -> ImageCollection | None:
        return self._by_portable_data_hash.get(portable_data_hash)


def _names_id(link_name: str) -> bool:
    return ImageId.from_stored(link_name) is not None
