# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""One run of arvados_docker_image: identify the image, read what the cluster holds, plan, apply, report.

Shared by the module (run by AnsiballZ on the managed host) and its action plugin (run in the controller when the
task runs there anyway), so both make the same decisions and return the same result.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._apply import LOCK_DIR, ActionRunner, image_lock
from ansible_collections.arvados.cluster.plugins.module_utils._arvados import ARVADOS_CONNECTION_SPEC, ArvadosClient, connection_options
from ansible_collections.arvados.cluster.plugins.module_utils._claim import DEFAULT_CLAIM_TTL, UploadClaim, claimed_plan, host_lock_identity
from ansible_collections.arvados.cluster.plugins.module_utils._catalog_reader import CatalogReader
from ansible_collections.arvados.cluster.plugins.module_utils._cluster_source import SOURCE_CONNECTION_SPEC, refused_source_options
from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import ClusterView
from ansible_collections.arvados.cluster.plugins.module_utils._docker import DOCKER_CONNECTION_SPEC
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageSourceError, OptionError, StoredImageError
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import ImageIdentity
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRef
from ansible_collections.arvados.cluster.plugins.module_utils._image_report import (
    Resolution,
    copied_portable_data_hash,
    creates_collection,
    link_lines,
    outside_project_warning,
    predicted_link_lines,
    predicted_view,
    state_after,
    state_before,
)
from ansible_collections.arvados.cluster.plugins.module_utils._plan import (
    COPY,
    DELETE_LINK,
    TRASH_COLLECTION,
    UPLOAD,
    Action,
    DesiredImage,
    ImageHoldings,
    LinkKey,
    plan_exclusive,
    plan_present,
)
from ansible_collections.arvados.cluster.plugins.module_utils._projects import check_project_uuid, check_project
from ansible_collections.arvados.cluster.plugins.module_utils._records import HASH_LINK_CLASS, REPO_TAG_LINK_CLASS, ImageCollection
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import (
    ServerChoice,
    hidden_migration_warning,
    server_choice,
    server_term,
)
from ansible_collections.arvados.cluster.plugins.module_utils._registry_record import (
    REGISTRY_SPEC,
    RecordedImage,
    check_registry_options,
    recorded_image,
)
from ansible_collections.arvados.cluster.plugins.module_utils._source_choice import identify_image, task_image_ref, with_source_details
from ansible_collections.arvados.cluster.plugins.module_utils._task import TaskContext

IMAGE_FORMAT = "v2"


@dataclasses.dataclass(frozen=True)
class Planned:
    """One read of the cluster for the image, and the plan made from it (for the image as the plan found it)."""

    desired: DesiredImage
    view: ClusterView | None
    holdings: ImageHoldings
    actions: list[Action]
    before: dict[str, t.Any]
    # Whether the read of the project's unlinked uploads of an image found nowhere is left to `confirmed`.
    unlinked_unread: bool = False

    @property
    def kinds(self) -> set[str]:
        return {action.kind for action in self.actions}


def argument_spec() -> dict[str, t.Any]:
    spec: dict[str, t.Any] = {
        "name": {"type": "str", "required": True},
        "tag": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "source": {"type": "str", "default": "local", "choices": ["local", "pull", "archive", "registry", "arvados"]},
        "pull": {"type": "str", "default": "missing", "choices": ["always", "missing"]},
        "platform": {"type": "str"},
        "archive_path": {"type": "path"},
        "project_uuid": {"type": "str"},
        "collection_name": {"type": "str"},
        "properties": {"type": "dict"},
        "replication": {"type": "int"},
        "storage_classes": {"type": "list", "elements": "str"},
        "force": {"type": "bool", "default": False},
        "verify": {"type": "bool", "default": False},
        "force_image_format": {"type": "bool", "default": False},
        "purge": {"type": "bool", "default": False},
        "exclusive": {"type": "bool", "default": False},
        "claim_ttl": {"type": "int", "default": DEFAULT_CLAIM_TTL},
    }
    spec.update(ARVADOS_CONNECTION_SPEC)
    spec.update(SOURCE_CONNECTION_SPEC)
    spec.update(DOCKER_CONNECTION_SPEC)
    # source: registry
    spec.update(REGISTRY_SPEC)
    return spec


def ensure_image(context: TaskContext, client: ArvadosClient | None = None) -> dict[str, t.Any]:
    """Run the task and return its result; a failure raises (see _task.run_task). `client`: one shared by several tasks."""
    return DockerImageTask(context, client).run()


class DockerImageTask:
    """Ensures one image's state: identify it, read what the cluster holds, plan, apply, report."""

    def __init__(self, context: TaskContext, client: ArvadosClient | None = None) -> None:
        self.context = context
        self.params = context.params
        self.ref: ImageRef = task_image_ref(self.params)
        self._check_source_options()
        self.result: dict[str, t.Any] = {"changed": False, "actions": [], "repo": self.ref.repo, "tag": self.ref.tag}
        self.client: t.Any = client
        self.reader: t.Any = None
        self.links_before: t.AbstractSet[LinkKey] = frozenset()

    def _check_source_options(self) -> None:
        source, archive_path = self.params["source"], self.params["archive_path"]
        if source == "archive" and not archive_path:
            raise ImageSourceError("source: archive needs archive_path, the path of a `docker save` archive on the host that runs the module")
        if archive_path and source != "archive":
            raise ImageSourceError(f"archive_path is only read with source: archive, but source is {source}; set source: archive or drop archive_path")
        if self.params["state"] == "absent" and source in ("pull", "registry"):
            raise ImageSourceError(f"state: absent never pulls; drop source: {source}")
        check_registry_options(self.params)
        if self.params["state"] == "absent" and source == "arvados":
            raise ImageSourceError("state: absent reads no source cluster; drop source: arvados")
        refused = refused_source_options(self.params)
        if refused:
            raise OptionError(f"{refused[0]} is only read with source: arvados, but source is {source}; set source: arvados or drop "
                              f"{', '.join(refused)}")
        if self.params["claim_ttl"] < 1:
            raise OptionError(f"claim_ttl must be at least 1 (seconds), not {self.params['claim_ttl']}")
        if self.params["exclusive"] and self.params["state"] == "absent":
            raise OptionError("exclusive makes repo:tag resolve to this image, and state: absent removes the tag; "
                              "drop exclusive, or set state: present")
        if self.params["exclusive"] and not self.ref.repo_tag:
            raise OptionError(f"exclusive needs a tag to make exclusive, and name {self.params['name']!r} is an image id; "
                              "give the repository and tag as name (repo:tag), or drop exclusive")

    def run(self) -> dict[str, t.Any]:
        if self.params["project_uuid"]:
            check_project_uuid(self.params["project_uuid"])
        self.client = self.client or ArvadosClient(connection_options(self.params.get))
        self.reader = CatalogReader(self.client)
        project_uuid = self.params["project_uuid"] or self.client.current_user()["uuid"]
        self.result["project_uuid"] = project_uuid
        if self.params["state"] == "absent":
            from ansible_collections.arvados.cluster.plugins.module_utils._image_removal import ImageRemoval  # pylint: disable=import-outside-toplevel
            self.result.update(ImageRemoval(self.context, self.ref, self.client, self.reader).run(project_uuid))
        else:
            self.ensure_present(project_uuid)
        return self.result

    # ---- what `repo:tag` resolves to: one read, one rule --------------------------------------------------

    def read_view(self) -> ClusterView | None:
        """What the server reads for `repo:tag`; None for an image named by id alone."""
        return self.reader.read_view([server_term(self.ref.repo_tag)]) if self.ref.repo_tag else None

    def choice(self, view: ClusterView | None) -> ServerChoice | None:
        if view is None or not self.ref.repo_tag:
            return None
        return server_choice(view, server_term(self.ref.repo_tag))

    # ---- present ----------------------------------------------------------------------------------------

    def ensure_present(self, project_uuid: str) -> None:
        source, identity = identify_image(self.context, self.ref, self.cluster_identity,
                                          recorded=lambda reference: self.registry_record(reference, project_uuid))
        self.result["pulled"] = bool(getattr(source, "pulled", False))
        if identity is None:
            self.result.update(changed=True, image_id=None, actions=[f"pull {self.ref.repo_tag} and store it in project {project_uuid}"])
            return
        self.result["image_id"] = identity.image_id
        if source is not None:  # an image the cluster already holds goes straight on (DESIGN §3, step 1)
            self.check_image_format()
        desired = self.desired_image(identity, project_uuid)
        claim = None if self.context.check_mode else UploadClaim(self.client, project_uuid, identity.image_id, self.params["claim_ttl"],
                                                                 lock_identity=host_lock_identity(LOCK_DIR))
        with image_lock(identity.image_id) if not self.context.check_mode else contextlib.nullcontext():
            with claimed_plan(claim, lambda: self.read_and_plan(desired, source, unlinked=False), lambda planned: UPLOAD in planned.kinds,
                              lambda planned: self.confirmed(planned, desired, source)) as planned:
                runner = self.apply(planned.actions, planned.desired, source, planned.holdings)
        if claim is not None and claim.waited:
            self.result["waited_for_upload"] = round(claim.waited, 1)
        self.report_present(planned.desired, planned.holdings, planned.actions, runner, planned.before, planned.view)

    def read_and_plan(self, desired: DesiredImage, source: t.Any, unlinked: bool = True) -> Planned:
        """What the project holds, the plan, and what the server reads for the name when the report needs it from before
        the run (nothing to change, check mode, or the diff's before side); the project checked when it changes.

        `unlinked=False`: an image found nowhere leaves the read of the project's unlinked uploads to `confirmed`.
        """
        holdings = self.reader.image_holdings(desired.image_id, desired.repo_tag, desired.project_uuid, unlinked=unlinked)
        actions = self.plan(desired, holdings, source) + self.exclusive_actions(desired, holdings)
        desired = with_source_details(desired, source, actions)
        if actions:
            check_project(self.client, desired.project_uuid)
        view = self.read_view() if not actions or self.context.check_mode or self.context.diff else None
        unread = not unlinked and holdings.in_project is None and holdings.readable_elsewhere is None
        return Planned(desired, view, holdings, actions, self.state_before(holdings, view, desired.project_uuid), unread)

    def confirmed(self, planned: Planned, desired: DesiredImage, source: t.Any) -> Planned:
        """The plan once the project's unlinked uploads of the image are read, when it left them out: read again with them
        when there are some (a run stopped before its links, or another run that stored the image meanwhile)."""
        if not planned.unlinked_unread:
            return planned
        if not self.reader.saved_in_project(desired.image_id, desired.project_uuid):
            return dataclasses.replace(planned, unlinked_unread=False)
        return self.read_and_plan(desired, source)

    def cluster_identity(self) -> ImageIdentity | None:
        """The image `repo:tag` names in the cluster (what the API server would run), as arv-keepdocker falls back to."""
        choice = self.choice(self.read_view())
        winner = choice.winner if choice is not None else None
        if winner is None:
            return None
        created = winner.link.properties.get("image_timestamp", "") if winner.link else ""
        return ImageIdentity(image_id=winner.image_id, created=created, repo_tags=[self.ref.repo_tag])

    def registry_record(self, reference: str, project_uuid: str) -> RecordedImage | None:
        """What the project's `repo:tag` collections record of the registry `reference` they were stored from."""
        if not self.ref.repo_tag:
            return None
        links = self.reader.project_tag_links(self.ref.repo_tag, project_uuid)
        return recorded_image(self.reader.collections(link.head_uuid for link in links), links, reference)

    def check_image_format(self) -> None:
        formats = self.client.docker_image_formats()
        if IMAGE_FORMAT in formats or self.params["force_image_format"]:
            return
        listed = ", ".join(formats) if formats else "no format"
        raise ImageSourceError(
            f"the cluster's dockerImageFormats lists {listed}, and this image is format {IMAGE_FORMAT}: containers could not run it; "
            "set force_image_format: true to store it anyway"
        )

    def desired_image(self, identity: ImageIdentity, project_uuid: str) -> DesiredImage:
        return DesiredImage(
            image_id=identity.image_id, repo_tag=self.ref.repo_tag, project_uuid=project_uuid,
            image_timestamp=identity.created or None, collection_name=self.params["collection_name"],
            properties=self.params["properties"] or {}, replication=self.params["replication"],
            storage_classes=self.params["storage_classes"], force=self.params["force"],
        )

    def exclusive_actions(self, desired: DesiredImage, holdings: ImageHoldings) -> list[Action]:
        """With `exclusive`, remove `repo:tag` from the project's collections of other images."""
        if not self.params["exclusive"] or not holdings.tagged_others or desired.repo_tag is None:
            return []
        links = self.reader.project_tag_links(desired.repo_tag, desired.project_uuid)
        return plan_exclusive(desired, [link for link in links if link.head_uuid in holdings.tagged_others])

    # ---- verify: the stored image read back ----------------------------------------------------------------

    def plan(self, desired: DesiredImage, holdings: ImageHoldings, source: t.Any) -> list[Action]:
        """The plan; with `verify`, the collection the image would be taken from is read back first, and one that does
        not load as the image is replaced by an upload (and, in the project, retired)."""
        actions = plan_present(desired, holdings)
        stored = self.collection_to_verify(holdings, actions) if self.params["verify"] else None
        if stored is None:
            return actions
        from ansible_collections.arvados.cluster.plugins.module_utils._stored_image import stored_image_problem  # pylint: disable=import-outside-toplevel
        problem = stored_image_problem(self.client, stored, desired.image_id)
        if problem is None:
            return actions
        if source is None:
            raise StoredImageError(f"verify: collection {stored.uuid} does not hold {desired.image_id} ({problem}), and the image source "
                                   "cannot give it (see the warning); make the image available to the source and run again")
        repaired = plan_present(dataclasses.replace(desired, force=True), holdings)
        upload = Action(UPLOAD, f"upload image {desired.image_id} into project {desired.project_uuid} again (verify: collection "
                                f"{stored.uuid} does not load as this image: {problem})")
        retire = self.retire_actions(stored, desired.project_uuid) if stored.owner_uuid == desired.project_uuid else []
        return [upload] + repaired[1:] + retire

    def collection_to_verify(self, holdings: ImageHoldings, actions: list[Action]) -> ImageCollection | None:
        """The collection the run would end with the image in: the project's, or the one it would copy; none for an upload."""
        kinds = {action.kind for action in actions}
        if UPLOAD in kinds or self.params["force"]:
            return None
        return holdings.readable_elsewhere if COPY in kinds else holdings.in_project

    def retire_actions(self, stored: ImageCollection, project_uuid: str) -> list[Action]:
        """Remove the project's image links to a collection that does not hold its image, then trash it."""
        links = self.reader.links([["head_uuid", "=", stored.uuid], ["owner_uuid", "=", project_uuid],
                                   ["link_class", "in", [HASH_LINK_CLASS, REPO_TAG_LINK_CLASS]]])
        actions = [Action(DELETE_LINK, f"delete {link.link_class} link {link.name!r} ({link.uuid}) from collection {stored.uuid}, "
                                       "which does not hold the image", target=link.uuid) for link in links]
        return actions + [Action(TRASH_COLLECTION, f"trash collection {stored.uuid}, which does not hold the image", target=stored.uuid)]

    def apply(self, actions: list[Action], desired: DesiredImage, source: t.Any, holdings: ImageHoldings) -> ActionRunner:
        in_project = holdings.in_project.uuid if holdings.in_project else None
        runner = ActionRunner(self.client, desired, getattr(source, "open_stream", None) if source is not None else None,
                              collection_uuid=in_project, copy_blocks=getattr(source, "copy_blocks", None))
        self.result["actions"] = [action.description for action in actions]
        self.result["changed"] = bool(actions)
        if actions and not self.context.check_mode:
            runner.run(actions)
        return runner

    # ---- the report ---------------------------------------------------------------------------------------

    def report_present(self, desired: DesiredImage, holdings: ImageHoldings, actions: list[Action], runner: ActionRunner,
                       before: dict[str, t.Any], view: ClusterView | None) -> None:
        collection, view = self.collection_after(desired, holdings, actions, runner, view)
        self.result["collection_uuid"] = collection.uuid if collection else None
        self.result["portable_data_hash"] = collection.portable_data_hash if collection else copied_portable_data_hash(holdings, actions)
        if collection and not self.context.check_mode:
            self.result["image"] = {"collection_uuid": collection.uuid, "portable_data_hash": collection.portable_data_hash,
                                    "owner_uuid": collection.owner_uuid, "image_timestamp": desired.image_timestamp}
        resolution = self.resolution(desired, view)
        if self.context.diff:
            links, others = self.links_after(holdings, actions, collection)
            self.result["diff"] = {"before": before, "after": state_after(collection, actions, self.context.check_mode, resolution, links, others)}

    def state_before(self, holdings: ImageHoldings, view: ClusterView | None, project_uuid: str) -> dict[str, t.Any]:
        """The diff's before side, with every image link the project holds on the image's collection (read for the diff)."""
        self.links_before = holdings.project_links
        if self.context.diff and holdings.in_project:
            self.links_before = self.reader.project_links(holdings.in_project.uuid, project_uuid)
        return state_before(holdings, self.choice(view), self.links_before, self.params["exclusive"])

    def links_after(self, holdings: ImageHoldings, actions: list[Action],
                    collection: ImageCollection | None) -> tuple[list[str], list[str] | None]:
        """The diff's after side of the links: read back after a real run, predicted in check mode."""
        exclusive = self.params["exclusive"]
        if self.context.check_mode or not actions:
            return predicted_link_lines(holdings, self.links_before, actions), [] if exclusive else None
        project_uuid = self.result["project_uuid"]
        links = link_lines(self.reader.project_links(collection.uuid, project_uuid), collection.uuid) if collection else []
        if not exclusive or self.ref.repo_tag is None:
            return links, None
        still_tagged = {link.head_uuid for link in self.reader.project_tag_links(self.ref.repo_tag, project_uuid)}
        return links, sorted(still_tagged & holdings.tagged_others)

    def collection_after(self, desired: DesiredImage, holdings: ImageHoldings, actions: list[Action], runner: ActionRunner,
                         view: ClusterView | None) -> tuple[ImageCollection | None, ClusterView | None]:
        """The image's collection in the project after the run, and the view the server reads then (read back, or predicted)."""
        if not actions:
            return holdings.in_project, view
        if self.context.check_mode:
            collection = holdings.in_project if not creates_collection(actions) else None
            return collection, predicted_view(view, desired, holdings, actions) if view is not None else None
        self.reader.forget(runner.changed_uuids)
        self.reader.remember(runner.created)
        return self.reader.collections([runner.collection_uuid])[0], self.read_view()

    def resolution(self, desired: DesiredImage, view: ClusterView | None) -> Resolution | None:
        """Whether `repo:tag` runs this image after the run; warns when it does not, or when unreadable links may decide."""
        choice = self.choice(view)
        if choice is None or view is None or desired.repo_tag is None:
            return None
        if choice.hidden_migration:
            self.context.warn(hidden_migration_warning(choice))
        resolution = Resolution(desired.repo_tag, desired.image_id, choice)
        self.result["resolves_to"] = resolution.as_result()
        if not resolution.resolves_to_image:
            self.context.warn(resolution.message)
            if self.params["exclusive"]:
                self.context.warn(outside_project_warning(resolution, desired.project_uuid))
        return resolution
