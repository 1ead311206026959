# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""state: absent of arvados_docker_image: remove the project's links for a name and, with purge, its untagged collections.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._apply import ActionRunner
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, DaemonUnavailable, ImageNotFound, ImageSourceError
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRef
from ansible_collections.arvados.cluster.plugins.module_utils._image_report import absent_diff
from ansible_collections.arvados.cluster.plugins.module_utils._plan import DesiredImage, PurgeCandidates, plan_absent
from ansible_collections.arvados.cluster.plugins.module_utils._projects import check_project
from ansible_collections.arvados.cluster.plugins.module_utils._records import HASH_LINK_CLASS, REPO_TAG_LINK_CLASS, ImageLink
from ansible_collections.arvados.cluster.plugins.module_utils._source_choice import image_source
from ansible_collections.arvados.cluster.plugins.module_utils._task import TaskContext


class ImageRemoval:
    """The project's links for `ref` removed; with purge, the project's collections of the image no tag points at trashed."""

    def __init__(self, context: TaskContext, ref: ImageRef, client: t.Any, reader: t.Any) -> None:
        self.context = context
        self.ref = ref
        self.client = client
        self.reader = reader

    def run(self, project_uuid: str) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {}
        links = self.project_links_to_remove(project_uuid)
        purge = self.purge_candidates(project_uuid, links) if self.context.params["purge"] else None
        actions = plan_absent(links, purge)
        if self.context.params["project_uuid"]:  # as for present: a mistyped or unreadable project fails rather than finding nothing
            check_project(self.client, project_uuid, writable=bool(actions))
        result.update(actions=[action.description for action in actions], changed=bool(actions))
        if actions and not self.context.check_mode:
            ActionRunner(self.client, DesiredImage(image_id="", repo_tag=self.ref.repo_tag, project_uuid=project_uuid)).run(actions)
        if self.context.diff:
            result["diff"] = absent_diff(links, purge, actions)
        return result

    def project_links_to_remove(self, project_uuid: str) -> list[ImageLink]:
        """The project's repo+tag links for `repo:tag`; for an image id, every image link on collections holding it."""
        owner = ["owner_uuid", "=", project_uuid]
        if self.ref.repo_tag:
            return self.reader.project_tag_links(self.ref.repo_tag, project_uuid)
        hash_links = self.reader.links([["link_class", "=", HASH_LINK_CLASS], ["name", "like", f"{self.ref.image_id_prefix}%"], owner])
        heads = sorted({link.head_uuid for link in hash_links})
        if not heads:
            return []
        return self.reader.links([["head_uuid", "in", heads], ["link_class", "in", [HASH_LINK_CLASS, REPO_TAG_LINK_CLASS]], owner])

    def purge_candidates(self, project_uuid: str, removed: list[ImageLink]) -> PurgeCandidates:
        """The project's collections of the image (identified as for present) and of the removed links, and their tags left."""
        hash_links: list[ImageLink] = []
        collections = self.reader.collections(link.head_uuid for link in removed)
        image_id = self.image_to_purge(removed)
        if image_id is not None:
            hash_links, holding = self.reader.image_in_project(image_id, project_uuid)
            collections += holding
        live = {collection.uuid for collection in collections if collection.owner_uuid == project_uuid}
        heads = live | {link.head_uuid for link in hash_links}
        # plan_absent leaves out the hash links that `removed` already deletes.
        return PurgeCandidates(collections=frozenset(live), remaining_tags=self.remaining_tags(heads, {link.uuid for link in removed}),
                               hash_links=hash_links)

    def image_to_purge(self, removed: list[ImageLink]) -> str | None:
        """The image id `purge` looks for: `name` when it is one, else the source's; None when only the removed links say."""
        if self.ref.image_id_prefix:
            return self.ref.image_id_prefix
        try:
            return image_source(self.context, self.ref).identify().image_id
        except (DaemonUnavailable, ImageNotFound, ArchiveError) as exc:
            if removed:
                return None
            raise ImageSourceError(f"purge: cannot tell which image {self.ref.repo_tag} is ({exc}), and the project holds no tag link "
                                   "for it; give the image id as name (sha256:<hex>) to purge its collections") from None

    def remaining_tags(self, heads: set[str], removed: set[str]) -> dict[str, int]:
        """How many repo+tag links, readable by this token, stay on each collection after the removal."""
        if not heads:
            return {}
        links = self.reader.links([["head_uuid", "in", sorted(heads)], ["link_class", "=", REPO_TAG_LINK_CLASS]])
        remaining: dict[str, int] = {}
        for link in links:
            if link.uuid not in removed:
                remaining[link.head_uuid] = remaining.get(link.head_uuid, 0) + 1
        return remaining
