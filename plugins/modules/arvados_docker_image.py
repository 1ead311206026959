#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
module: arvados_docker_image
short_description: Ensure a Docker image is stored in an Arvados cluster
version_added: 0.1.0
description:
  - Ensures that a Docker image is stored in Keep as a collection owned by an Arvados project, with the
    C(docker_image_hash) and C(docker_image_repo+tag) links that container requests find it by, as
    C(arv-keepdocker) stores it.
  - Checks what the cluster already holds first, through the same listing C(arv-keepdocker) uses. An image
    already in the project only gets the links it lacks; an image the token can read elsewhere is copied
    into the project without moving any bytes; only a missing image is uploaded, streamed from the Docker
    daemon or an archive file straight into Keep with no temporary file.
  - Reports which collection the API server will now pick for O(name), and warns when another image holds
    the tag.
  - With O(state=absent), removes the project's tag links and, with O(purge=true), trashes the collections
    left without a tag.
author:
  - arvados.cluster contributors (@arvados)
requirements:
  - arvados-python-client >= 3.2.1
  - docker >= 7.1.0 (for O(source=local) and O(source=pull))
extends_documentation_fragment:
  - arvados.cluster.arvados
  - arvados.cluster.arvados.DOCKER
  - arvados.cluster.attributes
  - arvados.cluster.attributes.actiongroup_arvados
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - The image, as C(repo), C(repo:tag), C(host:port/path/repo:tag), or an image id C(sha256:<hex>).
      - Names are normalised as Docker does, so C(docker.io/library/debian) is C(debian) and a registry's
        C(:443) port is dropped.
      - An image id, or an id prefix of C(sha256:) and at least 4 hex digits (or 12 bare hex digits), names
        an image without a tag; it gets only a C(docker_image_hash) link.
    type: str
    required: true
  tag:
    description:
      - The tag, when O(name) has none. A tag in both O(name) and O(tag) must be the same.
      - Defaults to V(latest) when neither gives one.
    type: str
  state:
    description:
      - V(present) ensures the image is in the project with both links.
      - V(absent) removes the project's C(docker_image_repo+tag) links for O(name) (for an image id, every
        link of the project on collections holding that image).
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - Where the image comes from when the cluster does not hold it yet.
      - V(local) reads it from the Docker daemon at O(docker_host). If the daemon is unreachable or lacks the
        image but the cluster already holds O(name), the cluster's image is used, as C(arv-keepdocker) does.
      - V(pull) pulls O(name) through the Docker daemon first (see O(pull)). Registry credentials come from
        the Docker host's own login (C(~/.docker/config.json)); use M(community.docker.docker_login) to set it.
      - V(archive) reads a C(docker save) archive at O(archive_path) on the host that runs the module, in the
        classic layout, the Docker 25 layout, or a pure OCI layout (converted on the fly). No Docker daemon is needed.
    type: str
    choices: [local, pull, archive]
    default: local
  pull:
    description:
      - With O(source=pull), V(missing) pulls only when the daemon lacks O(name); V(always) pulls every time.
      - A pull alone never makes the task C(changed); only a change in the cluster does.
      - In check mode nothing is pulled; the image the daemon already has, or else the cluster's, stands in.
    type: str
    choices: [always, missing]
    default: missing
  platform:
    description:
      - The platform to pull, for example V(linux/amd64), with O(source=pull).
    type: str
  archive_path:
    description:
      - The image archive to read with O(source=archive). Required then, and refused with any other source.
    type: path
  project_uuid:
    description:
      - The project that owns the collection and its links. Defaults to the token user's home project.
    type: str
  collection_name:
    description:
      - The name of the collection. When not set, a new collection is named as C(arv-keepdocker) names it,
        for example C(Docker image tiny:1.0 sha256:be05d), and an existing one keeps its name.
    type: str
  properties:
    description:
      - Properties merged into the collection's properties. Keys not listed are left alone.
    type: dict
  replication:
    description:
      - The desired replication of the collection (C(replication_desired)).
    type: int
  storage_classes:
    description:
      - The desired storage classes of the collection (C(storage_classes_desired)).
    type: list
    elements: str
  force:
    description:
      - Upload the image again into a new collection even if the cluster already holds it.
    type: bool
    default: false
  force_image_format:
    description:
      - Store the image even if the cluster's C(dockerImageFormats) does not list its format.
    type: bool
    default: false
  purge:
    description:
      - With O(state=absent), also trash each collection whose last C(docker_image_repo+tag) link was removed.
    type: bool
    default: false
notes:
  - Two runs for the same image on one host upload it once, because an upload holds a lock in
    C(~/.cache/arvados-cluster/locks) on the host that runs the module.
  - A run killed during an upload leaves no link behind; the next run finds a collection it saved by the
    C(docker-image-id) property and only adds its links.
  - At the default O(num_retries) and O(api_timeout), an API server that refuses connections or answers too slowly
    makes the task fail within a minute. A certificate the managed node does not trust, a host name that does not
    resolve, and an O(api_host) that does not talk TLS fail at once.
seealso:
  - name: arv-keepdocker
    description: The Arvados command-line tool this module replaces.
    link: https://doc.arvados.org/user/topics/arv-docker.html
"""

EXAMPLES = r"""
# The examples use these variables: images_project_uuid (a project the token can write, such as
# zzzzz-j7d0g-0123456789abcde), images_registry (a registry host, such as registry.example:5000) and
# images_archive (the path of a `docker save` archive on the host that runs the module).

- name: Store the image tiny:1.0 from the local Docker daemon in a project
  arvados.cluster.arvados_docker_image:
    name: tiny
    tag: "1.0"
    project_uuid: "{{ images_project_uuid }}"
  register: tiny

- name: Show the portable data hash to put in container requests
  ansible.builtin.debug:
    msg: "container_image: {{ tiny.portable_data_hash }}"

- name: Pull an image from a registry, then store it
  arvados.cluster.arvados_docker_image:
    name: "{{ images_registry }}/team/bwa:0.7.17"
    source: pull
    pull: missing
    platform: linux/amd64

- name: Store an image from a saved archive, with no Docker daemon
  arvados.cluster.arvados_docker_image:
    name: tiny:1.0
    source: archive
    archive_path: "{{ images_archive }}"
    project_uuid: "{{ images_project_uuid }}"
    properties:
      team: genomics
    replication: 2

- name: Set the connection once for every Arvados task of a block
  module_defaults:
    group/arvados.cluster.arvados:
      api_host: "{{ arvados_api_host }}"
      api_token: "{{ arvados_api_token }}"
  block:
    - name: Remove the tag and trash the collection left without one
      arvados.cluster.arvados_docker_image:
        name: tiny:1.0
        project_uuid: "{{ images_project_uuid }}"
        state: absent
        purge: true
"""

RETURN = r"""
collection_uuid:
  description: The project's collection that holds the image (a new one in check mode is not known yet).
  returned: when state is present
  type: str
  sample: zzzzz-4zz18-0123456789abcde
portable_data_hash:
  description: The portable data hash of the image's collection, the value to put in a container request.
  returned: when state is present
  type: str
  sample: 7f3b1e0e5d3b2e5c9c3b9e1f3a6d1c2e+1224
image_id:
  description: The image id, the digest of the image's configuration.
  returned: when the image is known
  type: str
  sample: sha256:be05d0e5e2b6d3c4b1a7d1e9f7c0a1b2c3d4e5f60718293a4b5c6d7e8f901234
repo:
  description: The normalised repository, or null for an image id.
  returned: always
  type: str
  sample: tiny
tag:
  description: The tag, or null for an image id.
  returned: always
  type: str
  sample: "1.0"
project_uuid:
  description: The project that owns the collection and links.
  returned: always
  type: str
  sample: zzzzz-j7d0g-0123456789abcde
actions:
  description: What the task did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
  sample:
    - upload image sha256:be05d... into project zzzzz-j7d0g-0123456789abcde (not in the cluster)
    - create docker_image_hash link 'sha256:be05d...' to the new collection
image:
  description: The image as the cluster lists it after the task, as the info module returns each image.
  returned: when state is present and not in check mode
  type: dict
  contains:
    collection_uuid:
      description: The collection.
      type: str
    portable_data_hash:
      description: Its portable data hash.
      type: str
    owner_uuid:
      description: Its owner.
      type: str
    image_timestamp:
      description: The image's creation time recorded on its links.
      type: str
resolves_to:
  description: What the API server picks for C(repo:tag) after the task, from the token's point of view.
  returned: when state is present and a repo is known
  type: dict
  contains:
    collection_uuid:
      description: The collection the server picks, or null when nothing resolves.
      type: str
    portable_data_hash:
      description: Its portable data hash.
      type: str
    image_id:
      description: The image id it holds.
      type: str
    is_this_image:
      description: Whether that is the image this task declared.
      type: bool
    message:
      description: Why the server picks it, in words.
      type: str
pulled:
  description: Whether the image was pulled from its registry (O(source=pull)). A pull alone does not make the task changed.
  returned: when state is present
  type: bool
  sample: false
diff:
  description: Before and after, with C(--diff).
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description: What C(repo:tag) resolved to, and the project's collection and links for the image.
      type: dict
    after:
      description: The same after the task.
      type: dict
"""

import contextlib
import datetime
import re
import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arvados.cluster.plugins.module_utils._apply import ActionRunner, image_lock
from ansible_collections.arvados.cluster.plugins.module_utils._arvados import (
    ARVADOS_CONNECTION_SPEC,
    ArvadosClient,
    ArvadosClientError,
    connection_from_module,
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

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
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
        self.client = ArvadosClient(connection_from_module(self.module))
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
        with image_lock(identity.image_id) if not self.module.check_mode else contextlib.nullcontext():
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
                self.module.warn(f"{exc}. Using the image the cluster already holds for {self.ref.repo_tag}: {identity.image_id}.")
            return None, identity

    def image_source(self) -> t.Any:
        kind = self.params["source"]
        if kind == "archive":
            return ArchiveSource(self.params["archive_path"], ref=self.ref.repo_tag, platform=self.params["platform"])
        reference = self.ref.repo_tag or self.ref.image_id_prefix
        if kind == "pull":
            if not self.ref.repo_tag:
                raise ImageRefError(f"name: source: pull needs a repository name, not the image id {reference}")
            if self.module.check_mode:
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
        if actions and not self.module.check_mode:
            runner.run(actions)
        return runner

    # ---- the report ---------------------------------------------------------------------------------------

    def report_present(self, desired: DesiredImage, holdings: ImageHoldings, actions: list[Action], runner: ActionRunner,
                       before: dict[str, t.Any], choice_inputs: tuple[list[ImageLink], list[ImageCollection]]) -> None:
        if actions and not self.module.check_mode:
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
        if collection and not self.module.check_mode:
            self.result["image"] = {"collection_uuid": collection.uuid, "portable_data_hash": collection.portable_data_hash,
                                    "owner_uuid": collection.owner_uuid, "image_timestamp": desired.image_timestamp}
        resolution = self.resolution(desired, choice_inputs)
        after = self.describe_after(desired, collection, holdings, actions, resolution)
        if self.module._diff:  # pylint: disable=protected-access
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
            self.module.warn(resolution.message)
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
        if collection is not None and self.module.check_mode:
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
        if actions and not self.module.check_mode:
            ActionRunner(self.client, DesiredImage(image_id="", repo_tag=self.ref.repo_tag, project_uuid=project_uuid)).run(actions)
        if self.module._diff:  # pylint: disable=protected-access
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


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = DockerImageTask(module).run()
    except (ImageRefError, ImageSourceError, ArvadosClientError, KeepUploadError) as exc:
        module.fail_json(msg=error_message(exc))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_json(msg=f"unexpected error: {type(exc).__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
