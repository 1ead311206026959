# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""One run of arvados_docker_image: identify the image, read what the cluster holds, plan, apply, report.

Shared by the module (run by AnsiballZ on the managed host) and its action plugin (run in the controller when the
task runs there anyway), so both make the same decisions and return the same result.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import traceback
import typing as t
from dataclasses import dataclass

from ansible_collections.arvados.cluster.plugins.module_utils._apply import ActionRunner, image_lock
from ansible_collections.arvados.cluster.plugins.module_utils._arvados import (
    ARVADOS_CONNECTION_SPEC,
    ArvadosClient,
    ArvadosClientError,
    resolve_connection,
)
from ansible_collections.arvados.cluster.plugins.module_utils._catalog import (
    HASH_LINK_CLASS,
    REPO_TAG_LINK_CLASS,
    CatalogReader,
    ImageCollection,
    ImageHoldings,
    ImageLink,
    Resolution,
    server_choice,
)
from ansible_collections.arvados.cluster.plugins.module_utils._docker import DOCKER_CONNECTION_SPEC, docker_client
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRef, ImageRefError, parse_image_ref
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import (
    ArchiveError,
    ArchiveSource,
    DaemonUnavailable,
    ImageIdentity,
    ImageNotFound,
    ImageSourceError,
    LocalDaemonSource,
    PullSource,
)
from ansible_collections.arvados.cluster.plugins.module_utils._plan import (
    COPY,
    UPLOAD,
    Action,
    DesiredImage,
    plan_absent,
    plan_present,
    wanted_links,
)
from ansible_collections.arvados.cluster.plugins.module_utils._upload import KeepUploadError

IMAGE_FORMAT = "v2"
ARVADOS_UUID = re.compile(r"[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}")
NEW_COLLECTION = "(new collection)"
# Failures a user can act on: reported by their message alone, with no traceback.
EXPECTED_ERRORS = (ImageRefError, ImageSourceError, ArvadosClientError, KeepUploadError)


@dataclass(frozen=True)
class TaskContext:
    """What a run needs from whoever runs it: validated options, the task's modes, and where warnings go."""

    params: t.Mapping[str, t.Any]
    check_mode: bool
    diff: bool
    warn: t.Callable[[str], None]


class TaskFailure(Exception):
    """The run failed: `msg` is for the user; `traceback` only for a failure that is a bug."""

    def __init__(self, msg: str, traceback_text: str | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.traceback = traceback_text


def ensure_image(context: TaskContext) -> dict[str, t.Any]:
    """Run the task; returns its result, or raises TaskFailure."""
    try:
        return DockerImageTask(context).run()
    except EXPECTED_ERRORS as exc:
        raise TaskFailure(error_message(exc)) from None
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise TaskFailure(f"unexpected error: {type(exc).__name__}: {exc}", traceback.format_exc()) from None


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
        "force_image_format": {"type": "bool", "default": False},
        "purge": {"type": "bool", "default": False},
    }
    spec.update(ARVADOS_CONNECTION_SPEC)
    spec.update(DOCKER_CONNECTION_SPEC)
    return spec


class DockerImageTask:
    """Ensures one image's state: identify it, read what the cluster holds, plan, apply, report."""

    def __init__(self, context: TaskContext) -> None:
        self.context = context
        self.params = context.params
        self.ref: ImageRef = parse_image_ref(self.params["name"], self.params["tag"])
        self._check_source_options()
        self.result: dict[str, t.Any] = {"changed": False, "actions": [], "repo": self.ref.repo, "tag": self.ref.tag}
        self.client: t.Any = None
        self.reader: t.Any = None

    def _check_source_options(self) -> None:
        source, archive_path = self.params["source"], self.params["archive_path"]
        if source == "archive" and not archive_path:
            raise ImageSourceError("source: archive needs archive_path, the path of a `docker save` archive on the host that runs the module")
        if archive_path and source != "archive":
            raise ImageSourceError(f"archive_path is only read with source: archive, but source is {source}; set source: archive or drop archive_path")
        if self.params["state"] == "absent" and source == "pull":
            raise ImageSourceError("state: absent never pulls; drop source: pull")

    def run(self) -> dict[str, t.Any]:
        self.client = ArvadosClient(resolve_connection(self.params.get))
        self.reader = CatalogReader(self.client)
        project_uuid = self.params["project_uuid"] or self.client.current_user()["uuid"]
        self.result["project_uuid"] = project_uuid
        if self.params["state"] == "absent":
            self.ensure_absent(project_uuid)
        else:
            self.ensure_present(project_uuid)
        return self.result

    # ---- present ----------------------------------------------------------------------------------------

    def ensure_present(self, project_uuid: str) -> None:
        source, identity = self.identify()
        self.result["pulled"] = bool(getattr(source, "pulled", False))
        if identity is None:
            self.result.update(changed=True, image_id=None, actions=[f"pull {self.ref.repo_tag} and store it in project {project_uuid}"])
            return
        self.result["image_id"] = identity.image_id
        self.check_image_format()
        desired = self.desired_image(identity, project_uuid)
        repo_tag = self.ref.repo_tag
        with image_lock(identity.image_id) if not self.context.check_mode else contextlib.nullcontext():
            choice_inputs = self.reader.choice_inputs(repo_tag) if repo_tag else ([], [])
            holdings = self.reader.image_holdings(identity.image_id, repo_tag, project_uuid)
            actions = plan_present(desired, holdings)
            before = self.describe_state(holdings, choice_inputs)
            if actions:
                self.check_project_writable(project_uuid)
            runner = self.apply(actions, desired, source, holdings)
        self.report_present(desired, holdings, actions, runner, before, choice_inputs)

    def identify(self) -> tuple[t.Any, ImageIdentity | None]:
        """The image's id and creation time, from its source, or from the cluster when the daemon cannot say.

        None only in check mode, for an image that would be pulled and that neither the daemon nor the cluster has.
        """
        source = self.image_source()
        try:
            return source, source.identify()
        except (DaemonUnavailable, ImageNotFound) as exc:
            if not self.ref.repo_tag or self.params["source"] == "archive":
                raise
            identity = self.identity_from_cluster()
            if identity is None and isinstance(source, _CheckModePull):
                return source, None
            if identity is None:
                field = "" if isinstance(exc, DaemonUnavailable) else "name: "
                raise type(exc)(f"{field}{exc}; the cluster does not hold {self.ref.repo_tag} either") from None
            if not isinstance(source, _CheckModePull):
                self.context.warn(f"{exc}. Using the image the cluster already holds for {self.ref.repo_tag}: {identity.image_id}.")
            return None, identity

    def image_source(self) -> t.Any:
        kind = self.params["source"]
        if kind == "archive":
            return ArchiveSource(self.params["archive_path"], ref=self.ref.repo_tag, platform=self.params["platform"])
        reference = self.ref.repo_tag or self.ref.image_id_prefix
        if kind == "pull":
            if not self.ref.repo_tag:
                raise ImageRefError(f"name: source: pull needs a repository name, not the image id {reference}")
            if self.context.check_mode:
                return _CheckModePull(self.params, reference)
            return PullSource(docker_client(self.params), reference, policy=self.params["pull"], platform=self.params["platform"])
        return _LazyDaemonSource(self.params, reference)

    def identity_from_cluster(self) -> ImageIdentity | None:
        """The image `repo:tag` names in the cluster (what the API server would run), as arv-keepdocker falls back to."""
        choice = self.reader.server_choice(self.ref.repo_tag, self.client.docker_image_formats())
        winner = choice.winner
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

    def check_project_writable(self, project_uuid: str) -> None:
        """Fail before any change when the project is unknown, trashed or not writable by this token."""
        resource = self.client.api.users() if "-tpzed-" in project_uuid else self.client.api.groups()
        try:
            project = self.client.execute(resource.get(uuid=project_uuid))
        except ArvadosClientError as exc:
            if exc.status in (403, 404):
                raise ArvadosClientError(self.unreadable_project_message(project_uuid, exc)) from None
            raise
        if project.get("can_write") is False or project.get("is_trashed"):
            state = "is trashed" if project.get("is_trashed") else "is not writable with this token"
            raise ArvadosClientError(f"project_uuid {project_uuid} {state}: choose another project, or ask its owner for can_write")

    def unreadable_project_message(self, project_uuid: str, error: ArvadosClientError) -> str:
        """Why the project cannot be read: not a uuid, trashed (a get that includes the trash finds it), or unknown to this token."""
        if not ARVADOS_UUID.fullmatch(project_uuid):
            return (f"project_uuid {project_uuid!r} is not an Arvados uuid (such as zzzzz-j7d0g-0123456789abcde): give the uuid of a "
                    "project, or leave project_uuid out for the token user's home project")
        if "-j7d0g-" in project_uuid:
            try:
                trashed = self.client.execute(self.client.api.groups().get(uuid=project_uuid, include_trash=True)).get("is_trashed")
            except ArvadosClientError:
                trashed = False
            if trashed:
                return f"project_uuid {project_uuid} is trashed: untrash it, or choose another project"
        return (f"project_uuid {project_uuid} is not a project this token can read: check the uuid, or ask the project's owner to share it "
                f"with can_write ({error})")

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
                       before: dict[str, t.Any], choice_inputs: tuple[list[ImageLink], list[ImageCollection]]) -> None:
        if actions and not self.context.check_mode:
            self.reader.forget(runner.changed_uuids)
            choice_inputs = self.reader.choice_inputs(self.ref.repo_tag) if self.ref.repo_tag else ([], [])
            collection = self.reader.collections([runner.collection_uuid])[0]
        elif actions:
            choice_inputs = predicted_choice_inputs(desired, holdings, actions, choice_inputs)
            collection = holdings.in_project if not _creates_collection(actions) else None
        else:
            collection = holdings.in_project
        self.result["collection_uuid"] = collection.uuid if collection else None
        self.result["portable_data_hash"] = collection.portable_data_hash if collection else _copied_pdh(holdings, actions)
        if collection and not self.context.check_mode:
            self.result["image"] = {"collection_uuid": collection.uuid, "portable_data_hash": collection.portable_data_hash,
                                    "owner_uuid": collection.owner_uuid, "image_timestamp": desired.image_timestamp}
        resolution = self.resolution(desired, choice_inputs)
        after = self.describe_after(desired, collection, holdings, actions, resolution)
        if self.context.diff:
            self.result["diff"] = {"before": before, "after": after}

    def resolution(self, desired: DesiredImage, choice_inputs: tuple[list[ImageLink], list[ImageCollection]]) -> Resolution | None:
        if not desired.repo_tag:
            return None
        links, collections = choice_inputs
        choice = server_choice(desired.repo_tag, links, collections, self.client.docker_image_formats())
        resolution = Resolution(desired.repo_tag, desired.image_id, choice)
        winner = resolution.winner
        self.result["resolves_to"] = {
            "collection_uuid": winner.collection.uuid if winner else None,
            "portable_data_hash": winner.portable_data_hash if winner else None,
            "image_id": winner.image_id if winner else None,
            "is_this_image": resolution.resolves_to_image,
            "message": resolution.message,
        }
        if not resolution.resolves_to_image:
            self.context.warn(resolution.message)
        return resolution

    def describe_state(self, holdings: ImageHoldings, choice_inputs: tuple[list[ImageLink], list[ImageCollection]]) -> dict[str, t.Any]:
        """The diff's view: what `repo:tag` resolves to, and the project's collection and links for the image."""
        state: dict[str, t.Any] = {"project_collection": None, "project_links": []}
        if self.ref.repo_tag:
            links, collections = choice_inputs
            winner = server_choice(self.ref.repo_tag, links, collections, self.client.docker_image_formats()).winner
            state["resolves_to"] = winner.portable_data_hash if winner else None
        if holdings.in_project:
            state["project_collection"] = _collection_view(holdings.in_project)
            state["project_links"] = sorted(f"{link_class} {name}" for link_class, name, head in holdings.project_links
                                            if head == holdings.in_project.uuid)
        return state

    def describe_after(self, desired: DesiredImage, collection: ImageCollection | None, holdings: ImageHoldings,
                       actions: list[Action], resolution: Resolution | None) -> dict[str, t.Any]:
        state: dict[str, t.Any] = {
            "project_collection": _collection_view(collection) if collection else {"uuid": NEW_COLLECTION},
            "project_links": sorted(f"{link_class} {name}" for link_class, name in wanted_links(desired)),
        }
        if collection is not None and self.context.check_mode:
            for action in actions:
                state["project_collection"].update({k: v for k, v in action.changes.items() if k in state["project_collection"]})
        if resolution is not None:
            winner = resolution.winner
            state["resolves_to"] = winner.portable_data_hash if winner else None
        return state

    # ---- absent -----------------------------------------------------------------------------------------

    def ensure_absent(self, project_uuid: str) -> None:
        links = self.project_links_to_remove(project_uuid)
        remaining = self.remaining_tags({link.head_uuid for link in links}, {link.uuid for link in links}) if self.params["purge"] else {}
        actions = plan_absent(links, remaining, self.params["purge"])
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


class _LazyDaemonSource:
    """The local daemon source, connected only when asked, so an unreachable daemon can fall back to the cluster."""

    def __init__(self, params: t.Mapping[str, t.Any], reference: str) -> None:
        self.params = params
        self.reference = reference
        self._source: LocalDaemonSource | None = None

    def _daemon_source(self) -> LocalDaemonSource:
        if self._source is None:
            self._source = LocalDaemonSource(docker_client(self.params), self.reference, platform=self.params.get("platform"))
        return self._source

    def identify(self) -> ImageIdentity:
        return self._daemon_source().identify()

    def open_stream(self) -> t.Any:
        return self._daemon_source().open_stream()


class _CheckModePull(_LazyDaemonSource):
    """In check mode nothing is pulled: the image the daemon already has stands in for the registry's."""


def _creates_collection(actions: list[Action]) -> bool:
    return any(action.kind in (UPLOAD, COPY) for action in actions)


def _copied_pdh(holdings: ImageHoldings, actions: list[Action]) -> str | None:
    """In check mode, a copy's portable data hash is already known: it is the source's."""
    if any(action.kind == COPY for action in actions) and holdings.readable_elsewhere:
        return holdings.readable_elsewhere.portable_data_hash
    return None


def _collection_view(collection: ImageCollection) -> dict[str, t.Any]:
    return {
        "uuid": collection.uuid, "portable_data_hash": collection.portable_data_hash, "name": collection.name,
        "properties": dict(collection.properties), "replication_desired": collection.replication_desired,
        "storage_classes_desired": list(collection.storage_classes_desired),
    }


def predicted_choice_inputs(desired: DesiredImage, holdings: ImageHoldings, actions: list[Action],
                            choice_inputs: tuple[list[ImageLink], list[ImageCollection]]) -> tuple[list[ImageLink], list[ImageCollection]]:
    """The links and collections the server would see after `actions`, for check mode's resolution report."""
    links, collections = choice_inputs
    if not desired.repo_tag or not any(action.link_class == REPO_TAG_LINK_CLASS for action in actions):
        return links, collections
    if holdings.in_project and not _creates_collection(actions):
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
    return links + [new_link], collections + [collection]


def error_message(exc: Exception) -> str:
    """An expected failure's message, led by the option to fix when it does not name one already."""
    message = str(exc)
    if isinstance(exc, ArchiveError) and not message.startswith("archive_path"):
        return f"archive_path: {message}"
    return message
