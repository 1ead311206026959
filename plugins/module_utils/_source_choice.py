# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Where a task reads its image from (an archive, the local daemon, a pull, a registry, another cluster), and the image's identity.

When the daemon cannot say (it is down, or lacks the image), a named image falls back to the one the cluster runs
for that name, as arv-keepdocker does.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import dataclasses
import os
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._docker import docker_client
from ansible_collections.arvados.cluster.plugins.module_utils._errors import CollectionError, DaemonUnavailable, ImageNotFound, ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRef, parse_image_ref, untagged_hint
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import ImageIdentity
from ansible_collections.arvados.cluster.plugins.module_utils._plan import COPY, CREATE_LINK, UPLOAD, Action, DesiredImage
from ansible_collections.arvados.cluster.plugins.module_utils._registry_record import RecordedLookup
from ansible_collections.arvados.cluster.plugins.module_utils._registry_ref import RegistryRef, parse_registry_name

ClusterIdentity = t.Callable[[], t.Optional[ImageIdentity]]


def identify_image(context: t.Any, ref: ImageRef, cluster_identity: ClusterIdentity,
                   recorded: RecordedLookup | None = None) -> tuple[t.Any, ImageIdentity | None]:
    """The image's source and its id and creation time; the source is None when the identity came from the cluster.

    The identity is None only in check mode, for an image that would be pulled and that neither the daemon nor the
    cluster has.
    """
    source = image_source(context, ref, recorded)
    try:
        return source, source.identify()
    except (DaemonUnavailable, ImageNotFound) as exc:
        if not ref.repo_tag or context.params["source"] in ("archive", "arvados"):
            raise
        identity = cluster_identity()
        if identity is None and isinstance(source, CheckModePull):
            return source, None
        if identity is None:
            field = "" if isinstance(exc, DaemonUnavailable) else "name: "
            message = f"{field}{exc}; the cluster does not hold {ref.repo_tag} either"
            untagged = untagged_hint(context.params["name"]) if context.params.get("tag") is None else None
            raise type(exc)(f"{message}; {untagged}" if untagged else message) from None
        if not isinstance(source, CheckModePull):
            context.warn(f"{exc}. Using the image the cluster already holds for {ref.repo_tag}: {identity.image_id}.")
        return None, identity


def task_image_ref(params: t.Mapping[str, t.Any]) -> ImageRef:
    """The image reference of the task's name and tag; with source: registry, the name may pin a manifest digest."""
    if params["source"] == "registry":
        return parse_registry_name(params["name"], params["tag"])[1]
    return parse_image_ref(params["name"], params["tag"])


def with_source_details(desired: DesiredImage, source: t.Any, actions: list[Action]) -> DesiredImage:
    """What a source tells only when something is to be created: where the image came from, for a new collection
    (its `provenance()`: a registry, or a pull through the daemon), and the build time a registry reads from the config
    blob (its `created()`), for a new collection or link."""
    kinds = {action.kind for action in actions}
    provenance = getattr(source, "provenance", None)
    if provenance is not None and kinds & {UPLOAD, COPY}:
        desired = dataclasses.replace(desired, properties={**provenance(), **desired.properties})
    created = getattr(source, "created", None)
    if created is not None and kinds & {UPLOAD, COPY, CREATE_LINK}:
        desired = dataclasses.replace(desired, image_timestamp=desired.image_timestamp or created() or None)
    return desired


def image_source(context: t.Any, ref: ImageRef, recorded: RecordedLookup | None = None) -> t.Any:
    """The source the task's options name: an archive, a registry (with what the project records of it), another
    cluster, a pull (none in check mode), or the local daemon. Each source's code (and the library it needs: python-dxf,
    the Docker SDK) is imported only for a task that reads from it."""
    # pylint: disable=import-outside-toplevel
    params = context.params
    if params["source"] == "registry":
        from ansible_collections.arvados.cluster.plugins.module_utils._registry_source import RegistrySource
        return RegistrySource(params, parse_registry_name(params["name"], params["tag"])[0], context.run_command, recorded)
    if params["source"] == "archive":
        from ansible_collections.arvados.cluster.plugins.module_utils._archive_source import ArchiveSource
        return ArchiveSource(params["archive_path"], ref=ref.repo_tag, platform=params["platform"], warn=context.warn)
    if params["source"] == "arvados":
        from ansible_collections.arvados.cluster.plugins.module_utils._cluster_source import ClusterSource
        return ClusterSource(params, ref)
    reference = ref.repo_tag or ref.image_id_prefix
    if params["source"] == "pull":
        if not ref.repo_tag:
            raise ImageRefError(f"name: source: pull needs a repository name, not the image id {reference}")
        if context.check_mode:
            return CheckModeAlwaysPull(context, reference, recorded) if params["pull"] == "always" else CheckModePull(params, reference)
        from ansible_collections.arvados.cluster.plugins.module_utils._daemon_source import PullSource
        return PullSource(docker_client(params), reference, policy=params["pull"], platform=params["platform"])
    return LazyDaemonSource(params, reference)


class LazyDaemonSource:
    """The local daemon source, connected only when asked, so an unreachable daemon can fall back to the cluster."""

    def __init__(self, params: t.Mapping[str, t.Any], reference: str) -> None:
        self.params = params
        self.reference = reference
        self._source: t.Any = None

    def _daemon_source(self) -> t.Any:
        if self._source is None:
            from ansible_collections.arvados.cluster.plugins.module_utils._daemon_source import LocalDaemonSource  # pylint: disable=import-outside-toplevel
            self._source = LocalDaemonSource(docker_client(self.params), self.reference, platform=self.params.get("platform"))
        return self._source

    def identify(self) -> ImageIdentity:
        return self._daemon_source().identify()

    def open_stream(self) -> t.Any:
        return self._daemon_source().open_stream()


class CheckModePull(LazyDaemonSource):
    """In check mode nothing is pulled: the image the daemon already has stands in for the registry's."""


class CheckModeAlwaysPull(CheckModePull):
    """Check mode of `source: pull` with `pull: always`: the registry tells which image a pull would bring, as for
    `source: registry` (one HEAD when the project's collection records the reference, else the manifest), and the
    daemon pulls nothing. Where the registry cannot be asked, the daemon's image stands in, with a warning."""

    def __init__(self, context: t.Any, reference: str, recorded: RecordedLookup | None) -> None:
        super().__init__(context.params, reference)
        self.context = context
        self.registry_ref = parse_registry_name(reference, None)[0]
        self.recorded = recorded

    def identify(self) -> ImageIdentity:
        from ansible_collections.arvados.cluster.plugins.module_utils._registry_source import RegistrySource  # pylint: disable=import-outside-toplevel
        params = {"platform": self.params.get("platform"), "pull": "always", "registry_ca_path": docker_certs_ca(self.registry_ref)}
        try:
            return RegistrySource(params, self.registry_ref, self.context.run_command, self.recorded).identify()
        except CollectionError as exc:
            self.context.warn(f"check mode could not ask the registry which image {self.registry_ref} names now ({exc}); "
                              "the image the Docker daemon holds stands in")
            return super().identify()


def docker_certs_ca(ref: RegistryRef) -> str | None:
    """The CA the local Docker daemon trusts for this registry (/etc/docker/certs.d/<host>/ca.crt), when there is one."""
    path = os.path.join("/etc/docker/certs.d", ref.host, "ca.crt")
    return path if os.path.isfile(path) else None
