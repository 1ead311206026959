# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The image module's report: whether `repo:tag` runs the image (`resolves_to`), and the diff's two sides.

Everything here reads a ServerChoice made by `server_choice(view, term)`, and check mode's prediction is a view with
the planned collection and link added, so the report never judges the server's rules on its own. Pure code.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass

from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import ClusterView
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import same_image
from ansible_collections.arvados.cluster.plugins.module_utils._plan import (
    COPY,
    CREATE_LINK,
    DELETE_LINK,
    TRASH_COLLECTION,
    UPLOAD,
    Action,
    DesiredImage,
    ImageHoldings,
    LinkKey,
    PurgeCandidates,
)
from ansible_collections.arvados.cluster.plugins.module_utils._records import REPO_TAG_LINK_CLASS, ImageCollection, ImageLink
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import Candidate, ServerChoice

RESOLVES = "resolves"
AMBIGUOUS = "ambiguous"
OTHER_IMAGE = "other_image"
UNRESOLVABLE = "unresolvable"
NEW_COLLECTION = "(new collection)"


@dataclass(frozen=True)
class Resolution:
    """Whether `repo_tag`, used as a container image, runs `image_id`.

    `status` is RESOLVES, AMBIGUOUS (a tie in whole seconds the server breaks at random, with this
    image in it), OTHER_IMAGE (another image wins) or UNRESOLVABLE (the server would refuse).
    """

    repo_tag: str
    image_id: str
    choice: ServerChoice

    @property
    def winner(self) -> Candidate | None:
        return self.choice.winner

    @property
    def status(self) -> str:
        winner = self.choice.winner
        if winner is None:
            return UNRESOLVABLE
        contenders = (winner,) + self.choice.tied_with_winner
        holds_image = [same_image(candidate.image_id, self.image_id) for candidate in contenders]
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
    def own_candidate(self) -> Candidate | None:
        """The best placed candidate holding `image_id`, if the server considers it at all."""
        for candidate in self.choice.candidates:
            if same_image(candidate.image_id, self.image_id):
                return candidate
        return None

    def as_result(self) -> dict[str, t.Any]:
        """The module's `resolves_to` return value."""
        winner = self.winner
        return {
            "collection_uuid": winner.collection.uuid if winner else None,
            "portable_data_hash": winner.portable_data_hash if winner else None,
            "image_id": winner.image_id if winner else None,
            "is_this_image": self.resolves_to_image,
            "message": self.message,
        }


def _why_it_wins(winner: Candidate, own: Candidate | None) -> str:
    if own is None or winner.link is None or own.link is None:
        return "no readable collection of a supported format holds this image under that name"
    if winner.sort_key[0] != own.sort_key[0]:  # type: ignore[index]
        return (
            f"its image timestamp (build time) {_time_text(winner.link.image_timestamp)} beats this image's "
            f"{_time_text(own.link.image_timestamp)}; the server prefers the newest build, not the newest upload"
        )
    return (
        f"both have the same image timestamp to the second and its oldest link was created later "
        f"({_time_text(winner.link.created_at)} against {_time_text(own.link.created_at)})"
    )


def _time_text(moment: datetime.datetime | None) -> str:
    return "none" if moment is None else moment.isoformat()


# ---- check mode's prediction -------------------------------------------------------------------------------

def creates_collection(actions: list[Action]) -> bool:
    return any(action.kind in (UPLOAD, COPY) for action in actions)


def copied_portable_data_hash(holdings: ImageHoldings, actions: list[Action]) -> str | None:
    """In check mode, a copy's portable data hash is already known: it is the source's."""
    if any(action.kind == COPY for action in actions) and holdings.readable_elsewhere:
        return holdings.readable_elsewhere.portable_data_hash
    return None


def predicted_view(view: ClusterView, desired: DesiredImage, holdings: ImageHoldings, actions: list[Action]) -> ClusterView:
    """The view the server would read once `actions` are done, for check mode's resolution report."""
    removed = {action.target for action in actions if action.kind == DELETE_LINK}
    if removed:
        view = view.without_links(removed)
    if not desired.repo_tag or not any(action.kind == CREATE_LINK and action.link_class == REPO_TAG_LINK_CLASS for action in actions):
        return view
    if holdings.in_project and not creates_collection(actions):
        collection = holdings.in_project
    else:
        source = holdings.readable_elsewhere
        pdh = source.portable_data_hash if source and not desired.force else "(new)"
        collection = ImageCollection(uuid=NEW_COLLECTION, portable_data_hash=pdh, owner_uuid=desired.project_uuid,
                                     file_names=(f"{desired.image_id}.tar",))
    new_link = ImageLink.from_api({
        "uuid": "(new link)", "link_class": REPO_TAG_LINK_CLASS, "name": desired.repo_tag, "head_uuid": collection.uuid,
        "owner_uuid": desired.project_uuid, "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "properties": {"image_timestamp": desired.image_timestamp} if desired.image_timestamp else {},
    })
    return view.with_added([new_link], [collection])


# ---- the diff ----------------------------------------------------------------------------------------------

def collection_view(collection: ImageCollection) -> dict[str, t.Any]:
    return {
        "uuid": collection.uuid, "portable_data_hash": collection.portable_data_hash, "name": collection.name,
        "properties": dict(collection.properties), "replication_desired": collection.replication_desired,
        "storage_classes_desired": list(collection.storage_classes_desired),
    }


def link_lines(links: t.Iterable[LinkKey], head_uuid: str) -> list[str]:
    """The diff's form of the links on one collection: `<link_class> <name>`, sorted."""
    return sorted(f"{link_class} {name}" for link_class, name, head in links if head == head_uuid)


def predicted_link_lines(holdings: ImageHoldings, links_before: t.Iterable[LinkKey], actions: list[Action]) -> list[str]:
    """Check mode's after side: the links the image's collection holds once `actions` are done."""
    kept = link_lines(links_before, holdings.in_project.uuid) if holdings.in_project and not creates_collection(actions) else []
    created = [f"{action.link_class} {action.link_name}" for action in actions if action.kind == CREATE_LINK]
    return sorted(set(kept) | set(created))


def state_before(holdings: ImageHoldings, choice: ServerChoice | None, links: t.Iterable[LinkKey], exclusive: bool) -> dict[str, t.Any]:
    """The diff's before side: what `repo:tag` resolves to, the project's collection of the image and every image link
    the project holds on it; with `exclusive`, the project's collections of other images that carry the tag."""
    state: dict[str, t.Any] = {"project_collection": None, "project_links": []}
    if choice is not None:
        state["resolves_to"] = choice.portable_data_hash
    if holdings.in_project:
        state["project_collection"] = collection_view(holdings.in_project)
        state["project_links"] = link_lines(links, holdings.in_project.uuid)
    if exclusive:
        state["other_images_tagged"] = sorted(holdings.tagged_others)
    return state


def state_after(collection: ImageCollection | None, actions: list[Action], check_mode: bool, resolution: Resolution | None,
                links: list[str], other_images_tagged: list[str] | None) -> dict[str, t.Any]:
    """The diff's after side: read back after a real run, predicted from the actions in check mode."""
    state: dict[str, t.Any] = {
        "project_collection": collection_view(collection) if collection else {"uuid": NEW_COLLECTION},
        "project_links": links,
    }
    if collection is not None and check_mode:
        for action in actions:
            state["project_collection"].update({k: v for k, v in action.changes.items() if k in state["project_collection"]})
    if resolution is not None:
        state["resolves_to"] = resolution.choice.portable_data_hash
    if other_images_tagged is not None:
        state["other_images_tagged"] = other_images_tagged
    return state


def absent_diff(removed: t.Sequence[ImageLink], purge: PurgeCandidates | None, actions: list[Action]) -> dict[str, t.Any]:
    """The diff of state: absent: the links it deletes and, with purge, the collections it trashes."""
    deleted = {action.target for action in actions if action.kind == DELETE_LINK}
    links = list(removed) + [link for link in (purge.hash_links if purge else ()) if link.uuid in deleted and link not in removed]
    before: dict[str, t.Any] = {"project_links": sorted(f"{link.link_class} {link.name} -> {link.head_uuid}" for link in links)}
    after: dict[str, t.Any] = {"project_links": []}
    if purge is not None:
        before["project_collections"] = sorted(purge.collections)
        trashed = {action.target for action in actions if action.kind == TRASH_COLLECTION}
        after["project_collections"] = sorted(set(purge.collections) - trashed)
    return {"before": before, "after": after}


def outside_project_warning(resolution: Resolution, project_uuid: str) -> str:
    """Why `exclusive` left `repo:tag` resolving elsewhere: the winner is outside the project, which it does not touch."""
    winner = resolution.winner
    where = f"collection {winner.collection.uuid} in {winner.collection.owner_uuid}" if winner else "no collection"
    return (f"exclusive: {resolution.repo_tag} still resolves to {winner.image_id if winner else 'nothing'} ({where}), outside "
            f"project {project_uuid}; exclusive removes the tag only from the project's own images, so remove it there, or give "
            "this image a newer image timestamp")
