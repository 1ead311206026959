# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""Desired image state + what the project and the cluster hold -> the ordered actions that converge them.

Pure code: plain data in, plain data out, so every decision is unit-tested without a client.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ansible_collections.arvados.cluster.plugins.module_utils._records import (
    HASH_LINK_CLASS as HASH_LINK,
    IMAGE_ID_PROPERTY,
    REPO_TAG_PROPERTY,
    REPO_TAG_LINK_CLASS as REPO_TAG_LINK,
    ImageCollection,
    ImageLink,
)

# (link_class, name, head_uuid): a link as far as the plan needs to know it exists.
LinkKey = t.Tuple[str, str, str]


@dataclass(frozen=True)
class ImageHoldings:
    """What the cluster holds of one image id, from one token's point of view."""

    in_project: ImageCollection | None = None
    project_links: t.AbstractSet[LinkKey] = frozenset()
    readable_elsewhere: ImageCollection | None = None
    # The project's collections that `repo:tag` also names and that hold another image.
    tagged_others: t.AbstractSet[str] = frozenset()


@dataclass(frozen=True)
class DesiredImage:
    """What the task declares: this image id, tagged `repo_tag`, stored in `project_uuid`."""

    image_id: str
    repo_tag: str | None
    project_uuid: str
    image_timestamp: str | None = None
    collection_name: str | None = None
    properties: t.Mapping[str, t.Any] = field(default_factory=dict)
    replication: int | None = None
    storage_classes: t.Sequence[str] | None = None
    force: bool = False


@dataclass(frozen=True)
class Action:
    """One change to the cluster. `target` is the collection uuid it concerns, or None for a new one."""

    kind: str
    description: str
    target: str | None = None
    source: str | None = None
    link_class: str | None = None
    link_name: str | None = None
    changes: t.Mapping[str, t.Any] = field(default_factory=dict)


UPLOAD = "upload"
COPY = "copy"
CREATE_LINK = "create_link"
UPDATE_COLLECTION = "update_collection"
DELETE_LINK = "delete_link"
TRASH_COLLECTION = "trash_collection"


def wanted_links(desired: DesiredImage) -> list[tuple[str, str]]:
    """The (link_class, name) pairs the project must hold for the image, hash link first."""
    links = [(HASH_LINK, desired.image_id)]
    if desired.repo_tag:
        links.append((REPO_TAG_LINK, desired.repo_tag))
    return links


def new_collection_properties(desired: DesiredImage) -> dict[str, t.Any]:
    """Properties of a collection this module creates: the declared ones plus the image's identity."""
    properties = dict(desired.properties)
    properties[IMAGE_ID_PROPERTY] = desired.image_id
    if desired.repo_tag:
        properties[REPO_TAG_PROPERTY] = desired.repo_tag
    return properties


def plan_present(desired: DesiredImage, holdings: ImageHoldings) -> list[Action]:
    """Actions that make the project hold the image with both links and the declared attributes."""
    if desired.force or holdings.in_project is None:
        return _plan_new_collection(desired, holdings)
    collection = holdings.in_project
    actions = _missing_link_actions(desired, collection.uuid, holdings.project_links)
    changes = attribute_changes(desired, collection)
    if changes:
        actions.append(Action(UPDATE_COLLECTION, f"update {', '.join(sorted(changes))} of collection {collection.uuid}",
                              target=collection.uuid, changes=changes))
    return actions


def _plan_new_collection(desired: DesiredImage, holdings: ImageHoldings) -> list[Action]:
    source = holdings.readable_elsewhere if not desired.force else None
    if source is not None:
        first = Action(COPY, f"copy collection {source.uuid} ({source.portable_data_hash}) into project {desired.project_uuid}"
                       " without uploading", source=source.uuid)
    else:
        reason = "forced upload" if desired.force else "not in the cluster"
        first = Action(UPLOAD, f"upload image {desired.image_id} into project {desired.project_uuid} ({reason})")
    return [first] + _missing_link_actions(desired, None, frozenset())


def _missing_link_actions(desired: DesiredImage, collection_uuid: str | None, links: t.AbstractSet[LinkKey]) -> list[Action]:
    present = {(link_class, name) for link_class, name, head_uuid in links if head_uuid == collection_uuid}
    where = f"collection {collection_uuid}" if collection_uuid else "the new collection"
    return [
        Action(CREATE_LINK, f"create {link_class} link {name!r} to {where}", target=collection_uuid, link_class=link_class, link_name=name)
        for link_class, name in wanted_links(desired)
        if (link_class, name) not in present
    ]


def attribute_changes(desired: DesiredImage, collection: ImageCollection) -> dict[str, t.Any]:
    """Declared collection attributes that differ from the stored ones, as an update body."""
    changes: dict[str, t.Any] = {}
    merged = dict(collection.properties)
    merged.update(desired.properties)
    if merged != dict(collection.properties):
        changes["properties"] = merged
    if desired.collection_name is not None and desired.collection_name != collection.name:
        changes["name"] = desired.collection_name
    if desired.replication is not None and desired.replication != collection.replication_desired:
        changes["replication_desired"] = desired.replication
    if desired.storage_classes is not None and list(desired.storage_classes) != list(collection.storage_classes_desired):
        changes["storage_classes_desired"] = list(desired.storage_classes)
    return changes


def plan_exclusive(desired: DesiredImage, tag_links_elsewhere: t.Sequence[ImageLink]) -> list[Action]:
    """Remove `repo:tag` from the project's other images, so that the name resolves to this one (`exclusive`).

    Planned after the image's own links, so the tag is never missing from the project in between.
    """
    return [_delete_link(link, ", which holds another image (exclusive)")
            for link in sorted(tag_links_elsewhere, key=lambda link: (link.head_uuid, link.uuid))]


@dataclass(frozen=True)
class PurgeCandidates:
    """The project's collections of the image that `purge` may trash, and what decides it.

    `collections` are the live ones; `remaining_tags` counts, per collection, the repo+tag links that stay on it (a
    collection still tagged is never trashed); `hash_links` are the project's hash links on them, removed with them.
    """

    collections: t.AbstractSet[str] = frozenset()
    remaining_tags: t.Mapping[str, int] = field(default_factory=dict)
    hash_links: t.Sequence[ImageLink] = ()


def plan_absent(removed_links: t.Sequence[ImageLink], purge: PurgeCandidates | None = None) -> list[Action]:
    """Actions that remove the project's links for an image and, with `purge`, its collections no tag points at."""
    actions = [_delete_link(link, "") for link in removed_links]
    if purge is None:
        return actions
    removed = {link.uuid for link in removed_links}
    heads = {link.head_uuid for link in purge.hash_links} | set(purge.collections)
    for head in sorted(heads):
        if purge.remaining_tags.get(head):
            continue
        actions.extend(_delete_link(link, ", which no tag points at") for link in purge.hash_links
                       if link.head_uuid == head and link.uuid not in removed)
        if head in purge.collections:
            actions.append(Action(TRASH_COLLECTION, f"trash collection {head}, which carries no other tag", target=head))
    return actions


def _delete_link(link: ImageLink, why: str) -> Action:
    return Action(DELETE_LINK, f"delete {link.link_class} link {link.name!r} ({link.uuid}) from collection {link.head_uuid}{why}",
                  target=link.uuid, link_class=link.link_class, link_name=link.name)
