# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Which image the API server runs for a term: `server_choice(view, term)`, the one answer every plugin gives.

The rules are services/api/app/models/collection.rb (find_all_for_docker_image, get_compatible_images): a name is
split at its first `:`; readable `docker_image_repo+tag` links named `repo:tag` match, else `docker_image_hash`
links whose name is LIKE `repo%`; each collection is placed by its oldest matching link, by image timestamp then
link creation time in whole seconds, newest first; only files in a supported format count, after following the
system user's migration links. Image ids, which the server never selects by, are read as `list_images_in_arv` reads
them. Pure code: the view is what CatalogReader read.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import ClusterView
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import SHA256, ImageId, parse_image_id
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import split_container_image
from ansible_collections.arvados.cluster.plugins.module_utils._records import (
    HASH_LINK_CLASS,
    REPO_TAG_LINK_CLASS,
    ImageCollection,
    ImageLink,
    SortKey,
    keep_locator,
    split_link_name,
    whole_seconds,
)

MATCHED_BY_PORTABLE_DATA_HASH = "portable_data_hash"
INCOMPATIBLE_ERROR = "Matching Docker image is incompatible with 'docker_image_formats' configuration."

TERM_NAME = "name"
TERM_IMAGE_ID = "image_id"
TERM_PORTABLE_DATA_HASH = "portable_data_hash"


@dataclass(frozen=True)
class LookupTerm:
    """One string to resolve: a container image name, an image id (prefix) or a portable data hash.

    `image_id` is the id a TERM_IMAGE_ID names; on a term of 12 to 64 bare hex digits (a name, or a portable data hash
    without size when 32), the id it is read as where the server's rules find nothing for it.
    """

    text: str
    kind: str
    image_id: ImageId | None = None
    portable_data_hash: str | None = None

    @property
    def repo_tag_name(self) -> str:
        """The `docker_image_repo+tag` link name the server looks for (split at the first `:`)."""
        term, tag = split_container_image(self.text)
        return f"{term}:{tag}"

    @property
    def hash_name_pattern(self) -> str:
        """The LIKE pattern of the server's fallback to `docker_image_hash` links."""
        return split_container_image(self.text)[0] + "%"


def server_term(container_image: str) -> LookupTerm:
    """A container_image string as the server reads it: a portable data hash, or else a name."""
    bare_id = parse_image_id(container_image) if not container_image.startswith(SHA256) else None
    portable_data_hash = keep_locator(container_image)
    if portable_data_hash is not None:
        return LookupTerm(container_image, TERM_PORTABLE_DATA_HASH, image_id=bare_id, portable_data_hash=portable_data_hash)
    return LookupTerm(container_image, TERM_NAME, image_id=bare_id)


def parse_term(text: t.Any) -> LookupTerm:
    """Classify what a user asks for: `sha256:<hex>` is an image id, anything else is read as the server reads it.

    Raises ImageRefError, worded for the user, for what cannot name an image.
    """
    if not isinstance(text, str):
        raise ImageRefError(f"{text!r} is a {type(text).__name__}, not a string naming an image")
    if not text or any(char.isspace() for char in text):
        raise ImageRefError(f"{text!r} is empty or holds whitespace; give repo:tag, an image id or a portable data hash")
    if text.startswith(SHA256):
        try:
            return LookupTerm(text, TERM_IMAGE_ID, image_id=parse_image_id(text))
        except ImageRefError:
            raise ImageRefError(f"{text!r} is not an image id: after 'sha256:' give 4 to 64 lowercase hex digits") from None
    return server_term(text)


@dataclass(frozen=True)
class Candidate:
    """An image the server could run for a search, in server order.

    `collection` is what a container would run; it differs from `migrated_from` (the collection the
    link points at) when a migration link redirected an incompatible image. `link` is None when the
    search named a portable data hash.
    """

    collection: ImageCollection
    link: ImageLink | None
    image_id: str
    repo: str | None = None
    tag: str | None = None
    migrated_from: ImageCollection | None = None

    @property
    def portable_data_hash(self) -> str:
        return self.collection.portable_data_hash

    @property
    def sort_key(self) -> SortKey | None:
        return None if self.link is None else server_preference_key(self.link)


@dataclass(frozen=True)
class ServerChoice:
    """What the API server resolves a `container_image` to: `candidates` in its order, the first wins.

    `matched_by` is the link class that matched, MATCHED_BY_PORTABLE_DATA_HASH, or None when nothing matched;
    `error` is the server's complaint when it would refuse the container request. `read_as_image_id` says the
    candidates hold the image id the term names, which a container request would not run; `hidden_migration` that
    a matched image's format is unsupported and the token cannot read the migration links the server may follow.
    """

    container_image: str
    matched_by: str | None
    candidates: tuple[Candidate, ...] = ()
    error: str | None = None
    read_as_image_id: bool = False
    hidden_migration: bool = False

    @property
    def winner(self) -> Candidate | None:
        return self.candidates[0] if self.candidates and self.error is None else None

    @property
    def portable_data_hash(self) -> str | None:
        return None if self.winner is None else self.winner.portable_data_hash

    @property
    def tied_with_winner(self) -> tuple[Candidate, ...]:
        """Other candidates with the winner's sort key and different content: the server may pick any."""
        winner = self.winner
        if winner is None or winner.sort_key is None:
            return ()
        return tuple(
            candidate for candidate in self.candidates[1:]
            if candidate.sort_key == winner.sort_key and candidate.portable_data_hash != winner.portable_data_hash
        )


def server_preference_key(link: ImageLink) -> SortKey:
    """The API server's sort key for a collection keyed by `link`: smaller sorts first.

    collection.rb (find_all_for_docker_image) sorts by [-image_timestamp, -created_at] in whole seconds
    (`to_i` truncates), with 0 for a missing or unreadable image_timestamp: so a timestamp at the epoch
    ties with none, and one before 1970 (Docker's zero time, year 1) sorts after links without one.
    """
    image_seconds = 0 if link.image_timestamp is None else -whole_seconds(link.image_timestamp)
    return image_seconds, -whole_seconds(link.created_at)


def keying_links(matching_links: t.Iterable[ImageLink]) -> dict[str, ImageLink]:
    """For each collection (head_uuid), the matching link the server keys it by: its oldest.

    collection.rb walks the links ordered by created_at DESC and overwrites the key of each head_uuid,
    so the last one, the oldest link, wins; a newer link on the same collection changes nothing.
    """
    keyed: dict[str, ImageLink] = {}
    for link in sorted(matching_links, key=lambda link: (link.created_at, link.uuid), reverse=True):
        keyed[link.head_uuid] = link
    return keyed


def order_links(view: ClusterView, matching_links: t.Iterable[ImageLink]) -> list[tuple[ImageCollection, ImageLink]]:
    """Readable collections that matching links point at, each with its keying link, in the server's order."""
    keyed = keying_links(link for link in matching_links if link.head_uuid in view.readable)
    ordered = [(view.readable[uuid], link) for uuid, link in keyed.items()]
    # Ruby's sort_by is not stable and the collections come unordered: ties are the server's to break
    # at random, so break them by uuid here to give the same answer every run.
    return sorted(ordered, key=lambda pair: (server_preference_key(pair[1]), pair[0].uuid))


def server_choice(view: ClusterView, term: LookupTerm) -> ServerChoice:
    """What a container request for `term` would run, from what `view` holds; image ids as list_images_in_arv reads them.

    Federation is not modelled: a portable data hash missing here is reported as not found.
    """
    if view.format_error is not None:
        return ServerChoice(term.text, None, (), view.format_error)
    if term.kind == TERM_IMAGE_ID and term.image_id is not None:
        return _choice_by_image_id(view, term.text, term.image_id)
    if term.kind == TERM_PORTABLE_DATA_HASH and term.portable_data_hash is not None:
        choice = _choice_by_portable_data_hash(view, term.text, term.portable_data_hash)
    else:
        choice = _choice_by_name(view, term.text)
    if choice.matched_by is None and term.image_id is not None:
        by_id = _choice_by_image_id(view, term.text, term.image_id)
        return by_id if by_id.matched_by is not None else choice
    return choice


def _choice_by_name(view: ClusterView, container_image: str) -> ServerChoice:
    term, tag = split_container_image(container_image)
    links = view.repo_tag_links(f"{term}:{tag}")
    if links:
        return _ranked_choice(view, container_image, REPO_TAG_LINK_CLASS, links)
    return _ranked_choice(view, container_image, HASH_LINK_CLASS, view.hash_links_like(f"{term}%"))


def _choice_by_image_id(view: ClusterView, container_image: str, image_id: ImageId) -> ServerChoice:
    """The collections whose hash link names that id (either spelling), ranked by the server's rules."""
    choice = _ranked_choice(view, container_image, HASH_LINK_CLASS, view.hash_links_for_id(image_id))
    return ServerChoice(choice.container_image, choice.matched_by, choice.candidates, choice.error,
                        read_as_image_id=True, hidden_migration=choice.hidden_migration)


def _ranked_choice(view: ClusterView, container_image: str, link_class: str, found: list[ImageLink]) -> ServerChoice:
    ordered = order_links(view, found)
    if not ordered:
        return ServerChoice(container_image, None, (), _not_found(container_image))
    candidates = tuple(filter(None, (_compatible_candidate(view, collection, link) for collection, link in ordered)))
    hidden = view.hidden_migrations and any(_unsupported_unredirected(view, collection) for collection, _link in ordered)
    if not candidates:
        return ServerChoice(container_image, link_class, (), INCOMPATIBLE_ERROR, hidden_migration=hidden)
    return ServerChoice(container_image, link_class, candidates, hidden_migration=hidden)


def _choice_by_portable_data_hash(view: ClusterView, container_image: str, portable_data_hash: str) -> ServerChoice:
    found = view.collection_with_hash(portable_data_hash)
    candidate = _compatible_candidate(view, found, None) if found is not None else None
    if candidate is None:
        matched_by = MATCHED_BY_PORTABLE_DATA_HASH if found is not None else None
        hidden = found is not None and view.hidden_migrations and _unsupported_unredirected(view, found)
        return ServerChoice(container_image, matched_by, (), _not_found(container_image), hidden_migration=hidden)
    return ServerChoice(container_image, MATCHED_BY_PORTABLE_DATA_HASH, (candidate,))


def _compatible_candidate(view: ClusterView, collection: ImageCollection, link: ImageLink | None) -> Candidate | None:
    """The collection as a candidate when its format is supported, else the one its migration link leads to, else None."""
    repo, tag = split_link_name(link) if link is not None else (None, None)
    image_id = view.supported_image_id(collection)
    if image_id is not None:
        return Candidate(collection, link, image_id, repo, tag)
    target = view.redirects.get(collection.portable_data_hash)
    target_image_id = None if target is None else view.supported_image_id(target)
    if target is None or target_image_id is None:
        return None
    return Candidate(target, link, target_image_id, repo, tag, migrated_from=collection)


def _unsupported_unredirected(view: ClusterView, collection: ImageCollection) -> bool:
    return view.supported_image_id(collection) is None and collection.portable_data_hash not in view.redirects


def _not_found(container_image: str) -> str:
    # Wording of services/api/app/models/container.rb (resolve_container_image).
    return f"docker image {json.dumps(container_image)} not found"


def hidden_migration_warning(choice: ServerChoice) -> str:
    """The one warning for a choice that migration links this token cannot read may change."""
    return (
        f"{choice.container_image}: a matching image is in a format the cluster does not support, and the API server may "
        "follow docker_image_migration links that this token cannot read (only admin tokens can): a container request "
        "may run another image than this answer says"
    )


# ---- what a set of terms needs read ---------------------------------------------------------------------------

def link_names_to_read(terms: t.Iterable[LookupTerm]) -> list[str]:
    """Link names that resolve the terms exactly: repo+tag names, and full image ids in both spellings."""
    names: set[str] = set()
    for term in terms:
        if term.kind == TERM_NAME:
            names.add(term.repo_tag_name)
        elif term.kind == TERM_IMAGE_ID and term.image_id is not None and term.image_id.is_complete:
            names.update(term.image_id.link_names)
    return sorted(names)


def hash_patterns_to_read(terms: t.Iterable[LookupTerm], view: ClusterView) -> list[str]:
    """LIKE patterns of hash links still needed once `view` holds what the link names found.

    Names with no readable repo+tag link fall back to hash links, as the server does; image id prefixes are read by
    prefix, in both spellings; bare hex also as an id, in case the server finds nothing for it.
    """
    patterns: set[str] = set()
    for term in terms:
        if term.kind == TERM_NAME and view.repo_tag_links(term.repo_tag_name):
            continue
        if term.kind == TERM_NAME:
            patterns.add(term.hash_name_pattern)
        if term.image_id is not None and not (term.kind == TERM_IMAGE_ID and term.image_id.is_complete):
            patterns.update(f"{name}%" for name in term.image_id.link_names)
    return sorted(patterns)
