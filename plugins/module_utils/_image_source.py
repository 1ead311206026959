# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""What the image sources share: the identity they report, and the image metadata they read.

An image's bytes come from an archive file (`_archive_source.ArchiveSource`) or the Docker daemon, with or without
a registry pull first (`_daemon_source.LocalDaemonSource`, `_daemon_source.PullSource`). Every source answers two
questions. `identify()` tells the image's identity cheaply: its id is the digest of its config, the id `docker load`
recreates. `open_stream()` opens the docker-archive tar (what `docker save` writes) to store in Keep, read with
memory bounded independent of the image size, and checked as it is read as `docker load` would check it
(_archive_check): its last read raises when the bytes are not the image they claim to be.

Here, as pure code: ImageIdentity, and the parsing of a docker-archive's `manifest.json`, of OCI image indexes and
manifests, and of image configs.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import parse_image_ref, split_repo_tag

# manifest.json, index.json, OCI manifests and image configs are small; a bigger one means a damaged archive.
METADATA_SIZE_LIMIT = 16 * 1024 * 1024
# Where an OCI image layout keeps its blobs, by the hex digits of their sha256 digest.
BLOB_DIR = "blobs/sha256/"
# The annotations of an index's descriptor that name its image, the OCI one first.
_NAME_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")


@dataclasses.dataclass(frozen=True)
class ImageIdentity:
    """Who an image is, as Arvados records it.

    `image_id` is `sha256:<64 hex>`, the digest of the image config (the Keep file is `<image_id>.tar`);
    `created` is the config's `created` ("" when it has none); `size` is the byte length of the stream
    `open_stream()` yields, when known in advance.
    """

    image_id: str
    created: str
    repo_tags: list[str]
    size: int | None = None


class ImageSource(t.Protocol):
    """Where the bytes of an image come from."""

    def identify(self) -> ImageIdentity:
        """The image's identity, without reading its layers where the source allows."""

    def open_stream(self) -> t.BinaryIO:
        """The image as the docker-archive tar `docker save` writes, to read chunk by chunk and close."""


def member_name(name: str) -> str:
    """A tar member name as archives spell it differently: `./a//b` and `/a/b` are `a/b`."""
    return posixpath.normpath("/" + name).lstrip("/")


def blob_member_name(digest: str, where: str) -> str:
    """The OCI layout member holding a blob, e.g. `blobs/sha256/<hex>`."""
    blob_id = ImageId.from_digest(digest)
    if blob_id is None:
        raise ArchiveError(f"{where}: unsupported blob digest {digest!r}: only sha256 digests are supported")
    return BLOB_DIR + blob_id.hex


def load_json(raw: bytes, what: str, where: str) -> t.Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ArchiveError(f"{where}: {what} is not valid JSON ({exc}); the archive is damaged, save it again") from exc


def _is_string_list(value: t.Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def parse_docker_manifest(raw: bytes, where: str) -> list[dict]:
    """The entries of a docker-archive `manifest.json`: each has `Config`, `Layers` and maybe `RepoTags`."""
    entries = load_json(raw, "manifest.json", where)
    if not isinstance(entries, list) or not entries:
        raise ArchiveError(f"{where}: manifest.json lists no image; the archive is damaged, save it again")
    for position, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or not _is_string_list(entry.get("Layers")):
            raise ArchiveError(f"{where}: entry {position} of manifest.json lacks Config or Layers; the archive is damaged, save it again")
    return entries


def entry_repo_tags(entry: dict) -> list[str]:
    tags = entry.get("RepoTags")
    return list(tags) if _is_string_list(tags) else []


def parse_oci_index(raw: bytes, what: str, where: str) -> list[dict]:
    """The descriptors an OCI image index (`index.json` or a nested index blob) lists."""
    return index_descriptors(load_json(raw, what, where), what, where)


def index_descriptors(index: t.Any, what: str, where: str) -> list[dict]:
    descriptors = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descriptors, list) or not all(isinstance(item, dict) and isinstance(item.get("digest"), str) for item in descriptors):
        raise ArchiveError(f"{where}: {what} is not an OCI image index (no manifests list); the archive is damaged")
    return descriptors


def manifest_parts(manifest: t.Any, what: str, where: str) -> tuple[dict, list[dict]]:
    """An OCI (or Docker v2) image manifest as its config descriptor and its layer descriptors."""
    config = manifest.get("config") if isinstance(manifest, dict) else None
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str) or not isinstance(layers, list):
        raise ArchiveError(f"{where}: {what} is not an image manifest (no config or layers); the archive is damaged")
    if not all(isinstance(layer, dict) and isinstance(layer.get("digest"), str) for layer in layers):
        raise ArchiveError(f"{where}: {what} lists a layer without a digest; the archive is damaged")
    return config, layers


def is_image_index(document: t.Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("manifests"), list)


def config_object(config: bytes, where: str) -> dict:
    """An image config's JSON object."""
    document = load_json(config, "the image config", where)
    if not isinstance(document, dict):
        raise ArchiveError(f"{where}: the image config is not a JSON object; the archive is damaged")
    return document


def config_created(config: dict) -> str:
    created = config.get("created")
    return created if isinstance(created, str) else ""


def descriptor_names(descriptor: dict) -> list[str]:
    annotations = descriptor.get("annotations")
    if not isinstance(annotations, dict):
        return []
    return [annotations[key] for key in _NAME_ANNOTATIONS if isinstance(annotations.get(key), str)]


def descriptor_repo_tags(descriptor: dict) -> list[str]:
    """RepoTags for a converted archive: the first annotation naming the image in full, as `repo:tag`."""
    full_names = [name for name in descriptor_names(descriptor) if is_full_repo_tag(name)]
    return full_names[:1]


def is_full_repo_tag(name: str) -> bool:
    """Whether `name` is `repo:tag` that `docker load` accepts in RepoTags, not a bare tag or a digest."""
    if split_repo_tag(name)[1] is None:
        return False
    try:
        parse_image_ref(name)
    except ImageRefError:
        return False
    return True
