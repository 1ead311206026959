# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The run of arvados_docker_image_info: the upstream listing as data, and which entry the server runs per name.

The listing is `arvados.commands.keepdocker.list_images_in_arv`, as `arv-keepdocker images` prints it. Which entry
the server would run for each `repo:tag` comes from `server_choice(view, term)` over one read of every name.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import datetime
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import ARVADOS_CONNECTION_SPEC, ArvadosClient, connection_options
from ansible_collections.arvados.cluster.plugins.module_utils._catalog_reader import CatalogReader
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId, full_image_id, parse_image_id
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import normalise_repo, split_repo_tag
from ansible_collections.arvados.cluster.plugins.module_utils._projects import check_project, check_project_uuid
from ansible_collections.arvados.cluster.plugins.module_utils._records import ImageCollection, iso_time
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import (
    Candidate,
    ServerChoice,
    hidden_migration_warning,
    server_choice,
    server_term,
)
from ansible_collections.arvados.cluster.plugins.module_utils._task import TaskContext

# What list_images_in_arv writes for a missing repository, tag or image id.
UNKNOWN_VALUES = ("<none>", "<unknown>")


def argument_spec() -> dict[str, t.Any]:
    spec: dict[str, t.Any] = {
        "name": {"type": "str"},
        "tag": {"type": "str"},
        "image_id": {"type": "str"},
        "project_uuid": {"type": "str"},
    }
    spec.update(ARVADOS_CONNECTION_SPEC)
    return spec


def list_images(context: TaskContext) -> dict[str, t.Any]:
    """Run the info module and return its result; a failure raises (see _task.run_task)."""
    return ImageLister(context).run()


class ImageFilter:
    """The module's filters, checked and normalised before anything is read."""

    def __init__(self, name: str | None, tag: str | None, image_id: str | None, project_uuid: str | None = None) -> None:
        self.repo, self.tag = _repo_and_tag(name, tag)
        self.image_id_prefix = _image_id_prefix(image_id)
        self.project_uuid = project_uuid

    def matches(self, image: t.Mapping[str, t.Any]) -> bool:
        if self.repo is not None and image["repo"] != self.repo:
            return False
        if self.tag is not None and image["tag"] != self.tag:
            return False
        if self.project_uuid is not None and image.get("owner_uuid") not in (None, self.project_uuid):
            return False
        return self.image_id_prefix is None or (image["image_id"] or "").startswith(self.image_id_prefix)

    def listing_searches(self) -> list[tuple[str | None, str | None]]:
        """The image_name and image_tag arguments that narrow list_images_in_arv's own reads.

        An image id is searched in both spellings: hash links of v1 images name it without `sha256:`.
        """
        if self.repo is not None and self.tag is not None:
            return [(self.repo, self.tag)]
        if self.image_id_prefix is not None:
            return [(name, None) for name in ImageId.from_stored(self.image_id_prefix).link_names]  # type: ignore[union-attr]
        return [(None, None)]


def _repo_and_tag(name: str | None, tag: str | None) -> tuple[str | None, str | None]:
    if name is None:
        return None, tag
    repo, name_tag = split_repo_tag(name)
    if name_tag is not None and tag is not None and name_tag != tag:
        raise ImageRefError(f"name {name!r} includes tag {name_tag!r} but option tag is {tag!r}; give the tag in only one of them")
    return normalise_repo(repo), name_tag if name_tag is not None else tag


def _image_id_prefix(image_id: str | None) -> str | None:
    if image_id is None:
        return None
    try:
        prefix = parse_image_id(image_id)
    except ImageRefError:
        prefix = None
    if prefix is None:
        raise ImageRefError(f"image_id: {image_id!r} is not an image id; give sha256: and 4 to 64 lowercase hex digits, or 12 to 64 bare ones")
    return str(prefix)


class ImageLister:
    """Lists images through the upstream listing, then adds owners, portable data hashes and the server's choice."""

    def __init__(self, context: TaskContext) -> None:
        self.context = context
        params = context.params
        if params["project_uuid"]:
            check_project_uuid(params["project_uuid"])
        self.image_filter = ImageFilter(params["name"], params["tag"], params["image_id"], params["project_uuid"])
        self.reader: t.Any = None

    def run(self) -> dict[str, t.Any]:
        client = ArvadosClient(connection_options(self.context.params.get))
        if self.image_filter.project_uuid:  # as in the image module: a mistyped or unreadable project fails rather than listing nothing
            check_project(client, self.image_filter.project_uuid, writable=False)
        self.reader = CatalogReader(client)
        images = [image for image in self.listing() if self.image_filter.matches(image)]
        collections = {collection.uuid: collection for collection in self.reader.collections(image["collection_uuid"] for image in images)}
        images = [with_collection(image, collections[image["collection_uuid"]]) for image in images if image["collection_uuid"] in collections]
        return {"changed": False, "images": mark_preferred(images, self.server_choices(images), self.image_filter.matches)}

    def listing(self) -> list[dict[str, t.Any]]:
        """The upstream listing's entries, each (collection, repo, tag) once, in the listing's order."""
        entries: dict[tuple[t.Any, ...], dict[str, t.Any]] = {}
        for image_name, image_tag in self.image_filter.listing_searches():
            for uuid, info in self.reader.upstream_listing(image_name, image_tag, self.image_filter.project_uuid):
                entry = listing_entry(uuid, info)
                entries.setdefault((uuid, entry["repo"], entry["tag"]), entry)
        return list(entries.values())

    def server_choices(self, images: list[dict[str, t.Any]]) -> dict[str, ServerChoice]:
        """Each listed name's choice, from everything the token can read, in one read of the cluster."""
        terms = [server_term(name) for name in sorted({repo_tag_of(image) for image in images if image["repo"] is not None})]
        view = self.reader.read_view(terms)
        choices = {term.text: server_choice(view, term) for term in terms}
        for choice in choices.values():
            if choice.hidden_migration:
                self.context.warn(hidden_migration_warning(choice))
        return choices


def listing_entry(collection_uuid: str, info: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """One list_images_in_arv entry as data; its `_sort_key` holds both of the link's times."""
    image_timestamp, created_at = _link_times(info)
    return {
        "repo": _known(info.get("repo")),
        "tag": _known(info.get("tag")),
        "image_id": full_image_id(_known(info.get("dockerhash"))),
        "collection_uuid": collection_uuid,
        "portable_data_hash": None,
        "owner_uuid": None,
        "image_timestamp": iso_time(image_timestamp),
        "created_at": iso_time(created_at),
        "preferred": False,
        "migrated_from": None,
    }


def _known(value: t.Any) -> t.Any:
    return None if value in UNKNOWN_VALUES else value


def _link_times(info: t.Mapping[str, t.Any]) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    image_timestamp, created_at = info.get("_sort_key") or (None, info.get("timestamp"))
    # list_images_in_arv stands datetime.datetime.min in for a missing image timestamp (keepdocker.EARLIEST_DATETIME).
    if image_timestamp is not None and image_timestamp.year == datetime.MINYEAR:
        image_timestamp = None
    return image_timestamp, created_at


def with_collection(image: dict[str, t.Any], collection: ImageCollection) -> dict[str, t.Any]:
    return dict(image, portable_data_hash=collection.portable_data_hash, owner_uuid=collection.owner_uuid)


def repo_tag_of(image: t.Mapping[str, t.Any]) -> str:
    return f"{image['repo']}:{image['tag']}"


def mark_preferred(images: list[dict[str, t.Any]], choices: t.Mapping[str, ServerChoice],
                   wanted: t.Callable[[t.Mapping[str, t.Any]], bool] = lambda image: True) -> list[dict[str, t.Any]]:
    """The entries with `preferred` set on the one per name the server runs.

    When the server follows a migration link, that is the migration target: its entry is added in front of the one
    it was migrated from when no tag link lists it, if it passes the filters (`wanted`).
    """
    marked = [dict(image) for image in images]
    by_name = {(image["collection_uuid"], repo_tag_of(image)): image for image in marked if image["repo"] is not None}
    for name, choice in choices.items():
        winner = choice.winner
        if winner is None:
            continue
        entry = by_name.get((winner.collection.uuid, name))
        if entry is None and winner.migrated_from is not None:
            entry = migration_target_entry(winner, name)
            if not wanted(entry):
                continue
            source = by_name.get((winner.migrated_from.uuid, name))
            marked.insert(marked.index(source) if source is not None else len(marked), entry)
        if entry is not None:
            entry.update(preferred=True, migrated_from=winner.migrated_from.uuid if winner.migrated_from else None)
    return marked


def migration_target_entry(winner: Candidate, name: str) -> dict[str, t.Any]:
    """An entry for the collection a migration link leads to, placed by the link the server followed to it."""
    repo, _sep, tag = name.rpartition(":")
    return {
        "repo": repo, "tag": tag, "image_id": full_image_id(winner.image_id),
        "collection_uuid": winner.collection.uuid, "portable_data_hash": winner.portable_data_hash,
        "owner_uuid": winner.collection.owner_uuid,
        "image_timestamp": iso_time(winner.link.image_timestamp) if winner.link else None,
        "created_at": iso_time(winner.link.created_at) if winner.link else None,
        "preferred": False, "migrated_from": None,
    }
