# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The Docker daemon as an image source: an image it holds (inspect, save), or one it pulls from a registry first.

Needs the Docker SDK for Python only when a source is made, so the other sources work without it. SDK and HTTP
errors become the collection's errors (_errors), naming the image and what was being done.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import tarfile
import traceback
import typing as t
from urllib.parse import quote

from ansible_collections.arvados.cluster.plugins.module_utils._archive_check import ArchiveCheck, checked_stream
from ansible_collections.arvados.cluster.plugins.module_utils._errors import (
    DaemonUnavailable,
    ImageNotFound,
    ImageRefError,
    ImageSourceError,
    PullError,
    SavedImageError,
)
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId, parse_image_id
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import (
    BLOB_DIR,
    METADATA_SIZE_LIMIT,
    ImageIdentity,
    is_image_index,
    load_json,
    member_name,
    parse_docker_manifest,
)
from ansible_collections.arvados.cluster.plugins.module_utils._platform import (
    Platform,
    parse_platform,
    platform_matches,
    select_platform_descriptor,
)
from ansible_collections.arvados.cluster.plugins.module_utils._registry_record import provenance
from ansible_collections.arvados.cluster.plugins.module_utils._registry_ref import parse_registry_name
from ansible_collections.arvados.cluster.plugins.module_utils._tar_stream import READ_CHUNK_SIZE, open_chunk_stream

try:
    import requests
    from docker import errors as docker_errors
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None

# What identifying an image on the containerd store may keep of the small blobs it passes in the save stream.
BLOB_CACHE_LIMIT = 32 * 1024 * 1024
PULL_POLICIES = ("always", "missing")
# The `Created` the daemon shows for a config without `created`.
ZERO_TIME = "0001-01-01T00:00:00Z"
PULL_HINT = "check the name and tag, and for a private registry log in on the Docker host (docker login) as the user the task runs as"


# ---------------------------------------------------------------------------------------------------------
# Talking to the daemon.
# ---------------------------------------------------------------------------------------------------------

def _require_docker_sdk() -> None:
    if not HAS_DOCKER:
        raise ImageSourceError("the Docker SDK for Python is required on the managed node for this source: pip install 'docker>=7.1'")


def _low_level_api(client: t.Any) -> t.Any:
    """The SDK's APIClient, given either a `docker.DockerClient` or the APIClient itself."""
    return getattr(client, "api", client)


def said_once(text: str) -> str:
    """The daemon's message without its repetition: dockerd 20.10 answers a missing image with
    `no such image: x: No such image: x`, its own wording around the registry's."""
    parts = text.split(": ")
    half = len(parts) // 2
    if len(parts) % 2 == 0 and [part.lower() for part in parts[:half]] == [part.lower() for part in parts[half:]]:
        return ": ".join(parts[half:])
    return text


def _daemon_says(exc: t.Any) -> str:
    return said_once(str(exc.explanation or exc))


@contextlib.contextmanager
def _daemon_errors(action: str, ref: str) -> t.Iterator[None]:
    """Turn SDK and HTTP errors into the collection's errors, naming the image and what was being done."""
    try:
        yield
    except docker_errors.APIError as exc:
        if action == "pull":
            raise PullError(f"pull {ref} failed: {_daemon_says(exc)}; {PULL_HINT}") from exc
        if isinstance(exc, docker_errors.NotFound):
            raise ImageNotFound(f"image {ref} is not in the Docker daemon ({_daemon_says(exc)}); pull it (source: pull) or load it (docker load)") from exc
        raise ImageSourceError(f"{action} {ref} failed: the Docker daemon answered {_daemon_says(exc)}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise DaemonUnavailable(f"cannot reach the Docker daemon to {action} {ref} ({exc}); start Docker or set docker_host, or use an archive source") from exc


def _api_version_at_least(api: t.Any, wanted: tuple[int, int]) -> bool:
    try:
        return tuple(int(part) for part in str(api.api_version).split(".")[:2]) >= wanted
    except ValueError:
        return False


def _platform_json(platform: Platform) -> str:
    described = {"os": platform.os, "architecture": platform.architecture}
    if platform.variant:
        described["variant"] = platform.variant
    return json.dumps(described)


def _open_saved_image(api: t.Any, ref: str, platform: Platform | None) -> t.Any:
    """The HTTP response of `docker save`; its read timeout is lifted because dockerd 20.10 sends nothing
    until it has exported the whole image to a temporary directory, which takes longer the bigger the image."""
    params = {"platform": _platform_json(platform)} if platform and _api_version_at_least(api, (1, 48)) else {}
    url = f"{api.base_url}/v{api.api_version}/images/{quote(ref, safe='/:@')}/get"
    with _daemon_errors("save", ref):
        response = api.get(url, params=params, stream=True, timeout=(api.timeout, None))
    if response.status_code == 404:
        response.close()
        raise ImageNotFound(f"image {ref} is not in the Docker daemon (docker save found nothing); pull or load it first")
    if response.status_code >= 400:
        message = response.text.strip()
        response.close()
        raise ImageSourceError(f"docker save {ref} failed: the Docker daemon answered {response.status_code} {message}")
    return response


def _response_chunks(response: t.Any, ref: str) -> t.Iterator[bytes]:
    try:
        yield from response.iter_content(READ_CHUNK_SIZE)
    except requests.exceptions.RequestException as exc:
        raise ImageSourceError(f"the Docker daemon broke off `docker save` of {ref}: {exc}") from exc


def _uses_containerd_store(api: t.Any, inspect: dict, ref: str) -> bool:
    """Whether `Id` is a manifest or index digest: so it is on the containerd image store (Docker 29's
    default for new installs), which Docker 28+ shows by giving images a `Descriptor`."""
    if inspect.get("Descriptor"):
        return True
    with _daemon_errors("read the image store kind for", ref):
        driver_status = api.info().get("DriverStatus") or []
    return any(isinstance(pair, list) and len(pair) == 2 and str(pair[1]).startswith("io.containerd.snapshotter") for pair in driver_status)


# ---------------------------------------------------------------------------------------------------------
# What `docker image inspect` tells.
# ---------------------------------------------------------------------------------------------------------

def inspect_created(inspect: dict) -> str:
    """The daemon's rendering of the config's `created`: the same string for configs Docker wrote."""
    created = inspect.get("Created")
    return created if isinstance(created, str) and created != ZERO_TIME else ""


def _inspect_platform_parts(inspect: dict) -> tuple[t.Any, t.Any, t.Any]:
    return inspect.get("Os"), inspect.get("Architecture"), inspect.get("Variant")


def _on_platform(inspect: dict, wanted: Platform | None) -> bool:
    return wanted is None or platform_matches(*_inspect_platform_parts(inspect), wanted)


def inspect_platform(inspect: dict) -> Platform:
    os_name, architecture, variant = _inspect_platform_parts(inspect)
    return parse_platform("/".join(part for part in (os_name or "linux", architecture or "amd64", variant) if part))


# ---------------------------------------------------------------------------------------------------------
# The image id in a `docker save` stream of the containerd store.
# ---------------------------------------------------------------------------------------------------------

def image_id_from_saved_archive(stream: t.BinaryIO, image_digest: str, platform: Platform, where: str) -> ImageId:
    """The config digest of the image whose manifest (or index) digest is `image_digest`, read from its
    `docker save` stream: follows index -> manifest -> config among the small blobs, stopping as soon as it
    knows; `manifest.json` (Docker 25+ writes one) settles it when it lists a single image."""
    blobs = _BlobCache()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                found = _learn_from_member(archive, member, blobs, image_digest, platform, where)
                if found is not None:
                    return found
    except tarfile.TarError as exc:
        raise ImageSourceError(f"the `docker save` stream of {where} is not a readable tar ({exc})") from exc
    raise ImageSourceError(f"the `docker save` stream of {where} does not hold the config of {image_digest}; is the image complete?")


class _BlobCache(dict):
    """Small blobs seen so far in a save stream, by the hex digits of their digest, up to `BLOB_CACHE_LIMIT` bytes in all."""

    def __init__(self) -> None:
        super().__init__()
        self.room = BLOB_CACHE_LIMIT

    def keep(self, hex_digest: str, data: bytes) -> None:
        if len(data) <= self.room:
            self[hex_digest] = data
            self.room -= len(data)

    def blob(self, digest: str) -> bytes | None:
        blob_id = ImageId.from_digest(digest)
        return self.get(blob_id.hex) if blob_id is not None else None


def _learn_from_member(archive: tarfile.TarFile, member: tarfile.TarInfo, blobs: _BlobCache, image_digest: str,
                       platform: Platform, where: str) -> ImageId | None:
    name = member_name(member.name)
    if not member.isfile() or member.size > METADATA_SIZE_LIMIT:
        return None
    if name == "manifest.json":
        entries = parse_docker_manifest(_member_bytes(archive, member), where)
        # The config is `<hex>.json` (classic layout) or `blobs/sha256/<hex>` (OCI layout).
        config_id = ImageId.from_stored(posixpath.basename(entries[0]["Config"]).split(".")[0])
        return config_id if len(entries) == 1 and config_id is not None and config_id.is_complete else None
    if not name.startswith(BLOB_DIR):
        return None
    blobs.keep(name[len(BLOB_DIR):], _member_bytes(archive, member))
    return _follow_to_config_id(blobs, image_digest, platform, where)


def _member_bytes(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    reader = archive.extractfile(member)
    return reader.read() if reader is not None else b""


def _follow_to_config_id(blobs: _BlobCache, digest: str, platform: Platform, where: str) -> ImageId | None:
    for _depth in range(8):
        raw = blobs.blob(digest)
        if raw is None:
            return None
        document = load_json(raw, f"blob {digest}", where)
        if not is_image_index(document):
            config = document.get("config") if isinstance(document, dict) else None
            config_digest = config.get("digest") if isinstance(config, dict) else None
            return ImageId.from_digest(config_digest) if isinstance(config_digest, str) else None
        digest = select_platform_descriptor(document["manifests"], platform, where)["digest"]
    return None


# ---------------------------------------------------------------------------------------------------------
# The sources.
# ---------------------------------------------------------------------------------------------------------

class LocalDaemonSource:
    """An image the Docker daemon holds, by `repo:tag` or id. `client` is a `docker.DockerClient` or its
    `.api`; `platform` (os/arch[/variant]) picks one image of a multi-platform one on the containerd store.

    The stream is `docker save` of the image id as the daemon sends it, read chunk by chunk: saving by id, as
    arv-keepdocker does, gives the same bytes and so the same portable data hash as its uploads. It is checked as it
    passes, as `docker load` would check it (_archive_check), so a daemon's bug cannot store another image.
    """

    def __init__(self, client: t.Any, ref: str, platform: str | None = None) -> None:
        _require_docker_sdk()
        self.ref = ref
        self.platform = platform
        self._api = _low_level_api(client)
        self._identity: ImageIdentity | None = None
        self._inspected: dict | None = None

    def identify(self) -> ImageIdentity:
        if self._identity is None:
            inspect = self._inspect()
            self._identity = ImageIdentity(self._image_id(inspect), inspect_created(inspect), list(inspect.get("RepoTags") or []))
        return self._identity

    def open_stream(self) -> t.BinaryIO:
        image_id = self.identify().image_id
        check = ArchiveCheck(image_id, f"the `docker save` stream of {self.ref} ({image_id})", error=SavedImageError)
        return checked_stream(self._open_saved(), check)

    def _open_saved(self) -> t.BinaryIO:
        response = _open_saved_image(self._api, self._inspect()["Id"], self._wanted_platform())
        return open_chunk_stream(_response_chunks(response, self.ref), on_close=response.close)

    def _inspect(self) -> dict:
        if self._inspected is None:
            with _daemon_errors("inspect", self.ref):
                self._inspected = self._api.inspect_image(self.ref)
        return self._inspected

    def _wanted_platform(self) -> Platform | None:
        return parse_platform(self.platform) if self.platform else None

    def _check_platform(self, inspect: dict) -> None:
        """The classic store holds one platform per tag: the asked one, or the image is not here."""
        if not _on_platform(inspect, self._wanted_platform()):
            found = "/".join(str(part) for part in _inspect_platform_parts(inspect) if part)
            raise ImageNotFound(f"image {self.ref} in the Docker daemon is for {found}, not {self.platform}; pull it for {self.platform} (source: pull)")

    def _image_id(self, inspect: dict) -> str:
        if not _uses_containerd_store(self._api, inspect, self.ref):
            self._check_platform(inspect)
            return inspect["Id"]
        # arvados/arvados#488: the containerd store's Id is a manifest digest, but `docker load` on crunch-run's
        # daemon recreates the image under its config digest, which only the saved image itself tells.
        platform = self._wanted_platform() or inspect_platform(inspect)
        with self._open_saved() as stream:
            return str(image_id_from_saved_archive(stream, inspect["Id"], platform, self.ref))


def split_pull_reference(ref: str) -> tuple[str, str]:
    """`repo:tag` or `repo@sha256:...` as (repository, tag or digest); no tag means `latest`."""
    if "@" in ref:
        repository, digest = ref.split("@", 1)
        return repository, digest
    repository, _sep, last = ref.rpartition("/")
    name, colon, tag = last.partition(":")
    prefix = repository + "/" if repository else ""
    return prefix + name, tag if colon else "latest"


def _names_an_image_id(ref: str) -> bool:
    try:
        return parse_image_id(ref) is not None
    except ImageRefError:  # `sha256:` and no id after it: a name, however odd
        return False


class PullSource(LocalDaemonSource):
    """An image pulled into the Docker daemon from its registry, then read as a `LocalDaemonSource`.

    `policy` `missing` pulls only when the daemon lacks `ref` (for `platform`, when given); `always`
    pulls. Registry credentials are the Docker host's own login (`~/.docker/config.json`), which the SDK
    reads. After `identify()` or `open_stream()`, `pulled` tells whether a pull happened.
    """

    def __init__(self, client: t.Any, ref: str, policy: str = "missing", platform: str | None = None) -> None:
        if policy not in PULL_POLICIES:
            raise ImageSourceError(f"pull policy {policy!r} is not one of {', '.join(PULL_POLICIES)}")
        super().__init__(client, ref, platform)
        self.policy = policy
        self.pulled = False
        self._pull_settled = False

    def identify(self) -> ImageIdentity:
        self._pull_if_due()
        return super().identify()

    def open_stream(self) -> t.BinaryIO:
        self._pull_if_due()
        return super().open_stream()

    def repo_digests(self) -> list[str]:
        """`repository@digest` of every manifest the daemon pulled this image by (its RepoDigests)."""
        return list(self._inspect().get("RepoDigests") or [])

    def provenance(self) -> dict[str, str]:
        """The properties `source: registry` records: the manifest digest the daemon keeps for the pulled repository
        (among its RepoDigests), and the reference; none when it keeps no digest."""
        ref = parse_registry_name(self.ref, None)[0]
        for repo_digest in self.repo_digests():
            name, _at, digest = repo_digest.rpartition("@")
            pulled = parse_registry_name(name, None)[0]
            if (pulled.host, pulled.repository) == (ref.host, ref.repository):
                return provenance(digest, str(ref))
        return {}

    def _pull_if_due(self) -> None:
        if self._pull_settled:
            return
        if self.policy == "always" or not self._present():
            self._pull()
            self.pulled = True
            self._inspected = None  # the pull may have moved the tag to another image
        self._pull_settled = True

    def _present(self) -> bool:
        try:
            return _on_platform(self._inspect(), self._wanted_platform())
        except ImageNotFound:
            return False

    def _pull(self) -> None:
        if _names_an_image_id(self.ref):
            raise PullError(f"cannot pull {self.ref}: an image id names no registry; give repo:tag")
        repository, tag = split_pull_reference(self.ref)
        with _daemon_errors("pull", self.ref):
            for message in self._api.pull(repository, tag=tag, stream=True, decode=True, platform=self.platform):
                if isinstance(message, dict) and message.get("error"):
                    raise PullError(f"pull {self.ref} failed: {said_once(str(message['error']))}; {PULL_HINT}")
