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
from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import ClusterView
from ansible_collections.arvados.cluster.plugins.module_utils._docker import DOCKER_CONNECTION_SPEC
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageSourceError, OptionError, StoredImageError
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import ImageIdentity
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRef, parse_image_ref
from ansible_collections.arvados.cluster.plugins.module_utils._image_report import (
    Resolution,
    copied_portable_data_hash,
    creates_collection,
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
    plan_absent,
    plan_present,
)
from ansible_collections.arvados.cluster.plugins.module_utils._projects import check_project_uuid, check_project
from ansible_collections.arvados.cluster.plugins.module_utils._records import HASH_LINK_CLASS, REPO_TAG_LINK_CLASS, ImageCollection, ImageLink
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import (
    ServerChoice,
    hidden_migration_warning,
    server_choice,
    server_term,
)
from ansible_collections.arvados.cluster.plugins.module_utils._source_choice import identify_image
from ansible_collections.arvados.cluster.plugins.module_utils._stored_image import stored_image_problem
from ansible_collections.arvados.cluster.plugins.module_utils._task import TaskContext

IMAGE_FORMAT = "v2"


@dataclasses.dataclass(frozen=True)
class Planned:
    """One read of the cluster for the image, and the plan made from it."""

    view: ClusterView | None
    holdings: ImageHoldings
    actions: list[Action]
    before: dict[str, t.Any]

    @property
    def kinds(self) -> set[str]:
        return {action.kind for action in self.actions}


def argument_spec() -> dict[str, t.Any]:
    spec: dict[str, t.Any] = {
        "name": {"type": "str", "required": True},
        "tag": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "source": {"type": "str", "default": "local", "choices": ["local", "pull", "archive"]},
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
        "claim_ttl": {"type": "int", "default": DEFAULT_CLAIM_TTL},
    }
    spec.update(ARVADOS_CONNECTION_SPEC)
    spec.update(DOCKER_CONNECTION_SPEC)
    return spec


def ensure_image(context: TaskContext, client: ArvadosClient | None = None) -> dict[str, t.Any]:
    """Run the task and return its result; a failure raises (see _task.run_task). `client`: one shared by several tasks."""
    return DockerImageTask(context, client).run()


class DockerImageTask:
    """Ensures one image's state: identify it, read what the cluster holds, plan, apply, report."""

    def __init__(self, context: TaskContext, client: ArvadosClient | None = None) -> None:
        self.context = context
        self.params = context.params
        self.ref: ImageRef = parse_image_ref(self.params["name"], self.params["tag"])
        self._check_source_options()
        self.result: dict[str, t.Any] = {"changed": False, "actions": [], "repo": self.ref.repo, "tag": self.ref.tag}
        self.client: t.Any = client
        self.reader: t.Any = None

    def _check_source_options(self) -> None:
        source, archive_path = self.params["source"], self.params["archive_path"]
        if source == "archive" and not archive_path:
            raise ImageSourceError("source: archive needs archive_path, the path of a `docker save` archive on the host that runs the module")
        if archive_path and source != "archive":
            raise ImageSourceError(f"archive_path is only read with source: archive, but source is {source}; set source: archive or drop archive_path")
        if self.params["state"] == "absent" and source == "pull":
            raise ImageSourceError("state: absent never pulls; drop source: pull")
        if self.params["claim_ttl"] < 1:
            raise OptionError(f"claim_ttl must be at least 1 (seconds), not {self.params['claim_ttl']}")

    def run(self) -> dict[str, t.Any]:
        if self.params["project_uuid"]:
            check_project_uuid(self.params["project_uuid"])
        self.client = self.client or ArvadosClient(connection_options(self.params.get))
        self.reader = CatalogReader(self.client)
        project_uuid = self.params["project_uuid"] or self.client.current_user()["uuid"]
        self.result["project_uuid"] = project_uuid
        if self.params["state"] == "absent":
            self.ensure_absent(project_uuid)
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
        source, identity = identify_image(self.context, self.ref, self.cluster_identity)
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
            with claimed_plan(claim, lambda: self.read_and_plan(desired, source), lambda planned: UPLOAD in planned.kinds,
                              lambda: self.reader.saved_in_project(identity.image_id, project_uuid)) as planned:
                runner = self.apply(planned.actions, desired, source, planned.holdings)
        if claim is not None and claim.waited:
            self.result["waited_for_upload"] = round(claim.waited, 1)
        self.report_present(desired, planned.holdings, planned.actions, runner, planned.before, planned.view)

    def read_and_plan(self, desired: DesiredImage, source: t.Any) -> Planned:
        """What the server reads for the name, what the project holds, and the plan; the project checked when it changes."""
        view = self.read_view()
        holdings = self.reader.image_holdings(desired.image_id, desired.repo_tag, desired.project_uuid)
        actions = self.plan(desired, holdings, source)
        if actions:
            check_project(self.client, desired.project_uuid)
        return Planned(view, holdings, actions, state_before(holdings, self.choice(view)))

    def cluster_identity(self) -> ImageIdentity | None:
        """The image `repo:tag` names in the cluster (what the API server would run), as arv-keepdocker falls back to."""
        choice = self.choice(self.read_view())
        winner = choice.winner if choice is not None else None
        if winner is None:
            return None
        created = winner.link.properties.get("image_timestamp", "") if winner.link else ""
        return ImageIdentity(image_id=winner.image_id, created=created, repo_tags=[self.ref.repo_tag])

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

    # ---- verify: the stored image read back ----------------------------------------------------------------

    def plan(self, desired: DesiredImage, holdings: ImageHoldings, source: t.Any) -> list[Action]:
        """The plan; with `verify`, the collection the image would be taken from is read back first, and one that does
        not load as the image is replaced by an upload (and, in the project, retired)."""
        actions = plan_present(desired, holdings)
        stored = self.collection_to_verify(holdings, actions) if self.params["verify"] else None
        problem = stored_image_problem(self.client, stored, desired.image_id) if stored is not None else None
        if stored is None or problem is None:
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
        runner = ActionRunner(self.client, desired, source.open_stream if source is not None else None, collection_uuid=in_project)
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
            self.result["diff"] = {"before": before, "after": state_after(desired, collection, actions, self.context.check_mode, resolution)}

    def collection_after(self, desired: DesiredImage, holdings: ImageHoldings, actions: list[Action], runner: ActionRunner,
                         view: ClusterView | None) -> tuple[ImageCollection | None, ClusterView | None]:
        """The image's collection in the project after the run, and the view the server reads then (read back, or predicted)."""
        if not actions:
            return holdings.in_project, view
        if self.context.check_mode:
            collection = holdings.in_project if not creates_collection(actions) else None
            return collection, predicted_view(view, desired, holdings, actions) if view is not None else None
        self.reader.forget(runner.changed_uuids)
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
        return resolution

    # ---- absent -----------------------------------------------------------------------------------------

    def ensure_absent(self, project_uuid: str) -> None:
        links = self.project_links_to_remove(project_uuid)
        remaining = self.remaining_tags({link.head_uuid for link in links}, {link.uuid for link in links}) if self.params["purge"] else {}
        actions = plan_absent(links, remaining, self.params["purge"])
        if self.params["project_uuid"]:  # as for present: a mistyped or unreadable project fails rather than finding nothing
            check_project(self.client, project_uuid, writable=bool(actions))
        self.result["actions"] = [action.description for action in actions]
        self.result["changed"] = bool(actions)
        if actions and not self.context.check_mode:
            ActionRunner(self.client, DesiredImage(image_id="", repo_tag=self.ref.repo_tag, project_uuid=project_uuid)).run(actions)
        if self.context.diff:
            self.result["diff"] = {
                "before": {"project_links": sorted(f"{link.link_class} {link.name} -> {link.head_uuid}" for link in links)},
                "after": {"project_links": []},
            }

    def project_links_to_remove(self, project_uuid: str) -> list[ImageLink]:
        """The project's repo+tag links for `repo:tag`; for an image id, every image link on collections holding it."""
        owner = ["owner_uuid", "=", project_uuid]
        if self.ref.repo_tag:
            return self.reader.links([["link_class", "=", REPO_TAG_LINK_CLASS], ["name", "=", self.ref.repo_tag], owner])
        hash_links = self.reader.links([["link_class", "=", HASH_LINK_CLASS], ["name", "like", f"{self.ref.image_id_prefix}%"], owner])
        heads = sorted({link.head_uuid for link in hash_links})
        if not heads:
            return []
        return self.reader.links([["head_uuid", "in", heads], ["link_class", "in", [HASH_LINK_CLASS, REPO_TAG_LINK_CLASS]], owner])

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
