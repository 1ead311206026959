# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""CatalogReader: the only code that reads image links and collections from the cluster.

`read_view(terms)` reads, in a fixed handful of batched requests, what the server's rules need for a set of terms
and returns a ClusterView; `image_holdings` is what the module needs to plan one image, through
`arvados.commands.keepdocker.list_images_in_arv`, as arv-keepdocker checks it.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import ClusterView, covering_prefixes, names_like_any
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId, same_image
from ansible_collections.arvados.cluster.plugins.module_utils._listing_capture import ListingCapture
from ansible_collections.arvados.cluster.plugins.module_utils._plan import ImageHoldings, LinkKey
from ansible_collections.arvados.cluster.plugins.module_utils._records import (
    COLLECTION_FIELDS,
    HASH_LINK_CLASS,
    IMAGE_ID_PROPERTY,
    MIGRATION_LINK_CLASS,
    REPO_TAG_LINK_CLASS,
    ImageCollection,
    ImageLink,
    MigrationLink,
    is_system_user_uuid,
    system_user_uuid_of,
)
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import (
    LookupTerm,
    hash_patterns_to_read,
    link_names_to_read,
)

LINK_FIELDS = ("uuid", "link_class", "name", "head_uuid", "tail_uuid", "owner_uuid", "created_at", "properties")
# The API server's largest page; a long `in` filter goes as a POST body (the SDK switches past 2,000 URL characters).
PAGE_SIZE = 1000
IMAGE_LINK_CLASSES = [REPO_TAG_LINK_CLASS, HASH_LINK_CLASS]
# Reads of hash links for the server's `LIKE 'name%'` fallback, whatever the number of names (each reads its pages).
HASH_LINK_READS = 4


class CatalogReader:
    """Reads image links and collections through one ArvadosClient, fetching each collection once."""

    def __init__(self, client: t.Any) -> None:
        self.client = client
        self._collections: dict[str, ImageCollection | None] = {}
        self._is_admin: bool | None = None
        # Every image link the token can read, once an unfiltered upstream listing has read them all.
        self._every_image_link: list[ImageLink] | None = None

    # ---- the view the server's rules read -----------------------------------------------------------------

    def read_view(self, terms: t.Iterable[LookupTerm], project_uuid: str | None = None) -> ClusterView:
        """What the server's rules need for `terms`, read together; with `project_uuid`, only what that project owns.

        Requests: one for the links the terms name, one per PAGE_SIZE collections those point at, at most
        HASH_LINK_READS for the hash links that names without a readable repo+tag link and image id prefixes need,
        one for portable data hashes, and, when a collection's format is not supported, one or two for migration links.
        """
        terms = list(terms)
        owner = [["owner_uuid", "=", project_uuid]] if project_uuid else []
        names = link_names_to_read(terms)
        links = self._links_named(names, owner) if names else []
        view = self._view(links, self._owned(self.collections(link.head_uuid for link in links), project_uuid))
        links += self.hash_links_like_any(hash_patterns_to_read(terms, view), owner)
        collections = self._owned(self.collections(link.head_uuid for link in links), project_uuid)
        hashes = [term.portable_data_hash for term in terms if term.portable_data_hash]
        collections += self._owned(self.collections_by_portable_data_hash(hashes), project_uuid)
        return self._with_migrations(self._view(links, collections), project_uuid)

    def _view(self, links: list[ImageLink], collections: list[ImageCollection]) -> ClusterView:
        return ClusterView(tuple(links), tuple(collections), tuple(self.client.docker_image_formats()),
                           system_user_uuid=system_user_uuid_of(self.client.discovery))

    def _with_migrations(self, view: ClusterView, project_uuid: str | None) -> ClusterView:
        """The view with the system user's migration links away from its unsupported images, and their targets."""
        if view.format_error is not None:
            return view
        unsupported = {c.portable_data_hash for c in view.readable.values() if view.supported_image_id(c) is None}
        if not unsupported:
            return view
        migrations = [link for link in self.migration_links(unsupported) if is_system_user_uuid(link.owner_uuid, view.system_user_uuid)]
        targets = self._owned(self.collections_by_portable_data_hash(link.head_uuid for link in migrations), project_uuid)
        redirected = {link.tail_uuid for link in migrations}
        return ClusterView(view.links, view.collections + tuple(targets), view.docker_image_formats, tuple(migrations),
                           view.system_user_uuid, hidden_migrations=bool(unsupported - redirected) and not self.is_admin())

    def is_admin(self) -> bool:
        """Whether the token is an admin's: only admins can read the system user's migration links."""
        if self._is_admin is None:
            self._is_admin = bool(self.client.current_user().get("is_admin"))
        return self._is_admin

    @staticmethod
    def _owned(collections: list[ImageCollection], project_uuid: str | None) -> list[ImageCollection]:
        return [c for c in collections if project_uuid is None or c.owner_uuid == project_uuid]

    # ---- records --------------------------------------------------------------------------------------------

    def links(self, filters: list[t.Any]) -> list[ImageLink]:
        return [ImageLink.from_api(item) for item in self._list_all("links", filters, LINK_FIELDS)]

    def _links_named(self, names: list[str], owner: list[t.Any]) -> list[ImageLink]:
        """The image links named any of `names` (and owned as `owner` says)."""
        if self._every_image_link is None or owner:
            return self.links([["link_class", "in", IMAGE_LINK_CLASSES], ["name", "in", names]] + owner)
        wanted = set(names)
        return [link for link in self._every_image_link if link.name in wanted]

    def hash_links_like_any(self, patterns: list[str], owner: list[t.Any]) -> list[ImageLink]:
        """Hash links named LIKE any of `patterns`, in at most HASH_LINK_READS reads for any number of patterns.

        The API ANDs its filters, so patterns cannot be ORed in one request: each read takes a common literal prefix
        (`covering_prefixes`), and the rows are then matched against the patterns here, as LIKE matches them.
        """
        if self._every_image_link is not None and not owner:
            found = [link for link in self._every_image_link if link.link_class == HASH_LINK_CLASS]
        else:
            found = []
            for prefix in covering_prefixes(patterns, HASH_LINK_READS):
                found += self.links([["link_class", "=", HASH_LINK_CLASS], ["name", "like", prefix + "%"]] + owner)
        matching = names_like_any(patterns, (link.name for link in found))
        return [link for link in found if link.name in matching]

    def migration_links(self, portable_data_hashes: t.Iterable[str]) -> list[MigrationLink]:
        wanted = sorted(set(portable_data_hashes))
        if not wanted:
            return []
        filters = [["link_class", "=", MIGRATION_LINK_CLASS], ["tail_uuid", "in", wanted]]
        return [MigrationLink.from_api(item) for item in self._list_all("links", filters, LINK_FIELDS)]

    def collections(self, uuids: t.Iterable[str]) -> list[ImageCollection]:
        """The readable, untrashed collections among `uuids` (each fetched at most once per reader)."""
        uuids = list(dict.fromkeys(uuids))
        missing = [uuid for uuid in uuids if uuid not in self._collections]
        for start in range(0, len(missing), PAGE_SIZE):
            batch = missing[start:start + PAGE_SIZE]
            found = {item["uuid"]: ImageCollection.from_api(item)
                     for item in self._list_all("collections", [["uuid", "in", batch]], COLLECTION_FIELDS)}
            self._collections.update({uuid: found.get(uuid) for uuid in batch})
        return [collection for collection in (self._collections[uuid] for uuid in uuids) if collection is not None]

    def collections_by_portable_data_hash(self, portable_data_hashes: t.Iterable[str]) -> list[ImageCollection]:
        wanted = sorted(set(portable_data_hashes))
        if not wanted:
            return []
        found = [ImageCollection.from_api(item)
                 for item in self._list_all("collections", [["portable_data_hash", "in", wanted]], COLLECTION_FIELDS)]
        self._collections.update({collection.uuid: collection for collection in found})
        return found

    def remember(self, collections: t.Iterable[ImageCollection]) -> None:
        """Collections as this run just wrote them (from the write's answer), so that reading them again costs nothing."""
        self._collections.update({collection.uuid: collection for collection in collections})

    def forget(self, uuids: t.Iterable[str]) -> None:
        """Drop cached collections that this run has changed."""
        for uuid in uuids:
            self._collections.pop(uuid, None)

    def _list_all(self, resource: str, filters: list[t.Any], select: t.Sequence[str]) -> list[dict[str, t.Any]]:
        """Every row matching `filters`, a page of PAGE_SIZE at a time (one request for most reads)."""
        rows: list[dict[str, t.Any]] = []
        while True:
            request = getattr(self.client.api, resource)().list(
                filters=filters, select=list(select), order=["created_at asc", "uuid asc"],
                limit=PAGE_SIZE, offset=len(rows), count="none",
            )
            page = self.client.execute(request)["items"]
            rows.extend(page)
            if len(page) < PAGE_SIZE:
                return rows

    # ---- the upstream listing, and one image's holdings -----------------------------------------------------

    def upstream_listing(self, image_name: str | None = None, image_tag: str | None = None,
                         project_uuid: str | None = None) -> list[tuple[str, dict[str, t.Any]]]:
        """`arvados.commands.keepdocker.list_images_in_arv`, the listing arv-keepdocker itself relies on.

        Its own reads are kept (see ListingCapture): the collections it listed are not read again, and after a listing
        of everything the token can read, so are no image links.
        """
        from arvados.commands.keepdocker import list_images_in_arv  # pylint: disable=import-outside-toplevel
        capture = ListingCapture(self.client.api, COLLECTION_FIELDS)
        listing = self.client.call(list_images_in_arv, capture, self.client.options.num_retries,
                                   image_name=image_name, image_tag=image_tag, project_uuid=project_uuid)
        self._collections.update((uuid, ImageCollection.from_api(row)) for uuid, row in capture.collections_read.items())
        if image_name is None and project_uuid is None:
            links = (ImageLink.from_api(row) for row in capture.links_read.values())
            self._every_image_link = sorted(links, key=lambda link: (link.created_at, link.uuid))
        return listing

    def image_holdings(self, image_id: str, repo_tag: str | None, project_uuid: str, unlinked: bool = True) -> ImageHoldings:
        """Where the cluster holds `image_id`: in the project (with which links), or readable elsewhere.

        As arv-keepdocker does: first `repo:tag` in the project through the upstream listing, and only when
        that does not hold this image, the image id across what the token can read. When the listings find it nowhere in
        the project, the project's collections saved for the image without links (`saved_in_project`) are read last.
        `unlinked=False` leaves that read out when the image is nowhere else either: the plan is then an upload, which
        makes that read once it holds the image's claim, where it also tells whether another run stored the image.
        """
        tagged_others: frozenset[str] = frozenset()
        if repo_tag:
            repo, _sep, tag = repo_tag.rpartition(":")
            tagged = self.upstream_listing(repo, tag, project_uuid)
            held = [uuid for uuid, info in tagged if same_image(info["dockerhash"], image_id)]
            tagged_others = frozenset(uuid for uuid, _info in tagged) - set(held)
            in_project = self.collections(held[:1])
            if in_project:
                links = {(HASH_LINK_CLASS, image_id, held[0]), (REPO_TAG_LINK_CLASS, repo_tag, held[0])}
                return ImageHoldings(in_project=in_project[0], project_links=frozenset(links), tagged_others=tagged_others)
        holding = self.collections(uuid for uuid, _info in self.upstream_listing(image_id))
        in_project = [c for c in holding if c.owner_uuid == project_uuid]
        elsewhere = [c for c in holding if c.owner_uuid != project_uuid]
        if not in_project and (unlinked or elsewhere):
            in_project = self._unlinked_uploads(image_id, project_uuid)
        if not in_project:
            return ImageHoldings(readable_elsewhere=elsewhere[0] if elsewhere else None, tagged_others=tagged_others)
        return ImageHoldings(in_project=in_project[0], project_links=self.project_links(in_project[0].uuid, project_uuid),
                             readable_elsewhere=elsewhere[0] if elsewhere else None, tagged_others=tagged_others)

    def saved_in_project(self, image_id: str, project_uuid: str) -> bool:
        """Whether the project holds a collection saved for the image, linked or not (one request)."""
        return bool(self._unlinked_uploads(image_id, project_uuid))

    def _unlinked_uploads(self, image_id: str, project_uuid: str) -> list[ImageCollection]:
        """Collections a run saved in the project before it was stopped short of creating their links."""
        filters = [["owner_uuid", "=", project_uuid], [f"properties.{IMAGE_ID_PROPERTY}", "=", image_id]]
        found = [ImageCollection.from_api(item) for item in self._list_all("collections", filters, COLLECTION_FIELDS)]
        self._collections.update({collection.uuid: collection for collection in found})
        return found

    def project_links(self, collection_uuid: str, project_uuid: str) -> frozenset[LinkKey]:
        """Every image link the project holds on one collection."""
        filters = [["head_uuid", "=", collection_uuid], ["owner_uuid", "=", project_uuid], ["link_class", "in", IMAGE_LINK_CLASSES]]
        return frozenset((link.link_class, link.name, link.head_uuid) for link in self.links(filters))

    def project_tag_links(self, repo_tag: str, project_uuid: str) -> list[ImageLink]:
        """The project's `docker_image_repo+tag` links named `repo_tag`, on whichever collections."""
        return self.links([["link_class", "=", REPO_TAG_LINK_CLASS], ["name", "=", repo_tag], ["owner_uuid", "=", project_uuid]])

    def image_in_project(self, image_id: str, project_uuid: str) -> tuple[list[ImageLink], list[ImageCollection]]:
        """The project's hash links naming `image_id` (either spelling), and its live collections holding it, linked or not."""
        stored = ImageId.from_stored(image_id)
        names = list(stored.link_names) if stored is not None else [image_id]
        hash_links = self.links([["link_class", "=", HASH_LINK_CLASS], ["name", "in", names], ["owner_uuid", "=", project_uuid]])
        collections = self._owned(self.collections(link.head_uuid for link in hash_links), project_uuid)
        known = {collection.uuid for collection in collections}
        return hash_links, collections + [c for c in self._unlinked_uploads(image_id, project_uuid) if c.uuid not in known]
