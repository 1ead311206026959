# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""A registry's image manifest, checked, and the docker-archive it becomes: pure code for `source: registry`.

The archive is a function of the manifest alone: `manifest.json` (one entry, no RepoTags, as `docker save <id>`
writes), then the folders, the config verbatim and each layer as the registry serves it, all under
`blobs/sha256/<hex>` (the layout Docker 25+ saves), with fixed modes and times. `docker load` (20.10 too) and the
containers/image docker-archive reader (`singularity build ... docker-archive://`) decompress gzip layers; a tar
header needs each member's size up front, which the manifest gives for the compressed blob. zstd layers are refused:
Docker 20.10's `docker load` cannot decompress them (its zstd support came with 23.0), so the stored image would not
load on such compute nodes.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, PullError
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import BLOB_DIR, blob_member_name, manifest_parts
from ansible_collections.arvados.cluster.plugins.module_utils._tar_stream import TAR_END, tar_header, tar_padding

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws")
LOADABLE_LAYER_TYPES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
)
CONFIG_TYPES = ("application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json")
# The image config is small; a bigger one means a broken manifest.
CONFIG_SIZE_LIMIT = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Blob:
    """A blob the manifest names: its digest and its size in bytes."""

    digest: str
    size: int

    @property
    def member(self) -> str:
        return blob_member_name(self.digest, "the manifest")


@dataclasses.dataclass(frozen=True)
class RegistryImage:
    """One image's manifest, reduced to what the archive needs: the config blob and the layer blobs in order."""

    config: Blob
    layers: tuple[Blob, ...]

    @property
    def image_id(self) -> str:
        return self.config.digest

    def manifest_json(self) -> bytes:
        entry = {"Config": self.config.member, "RepoTags": None, "Layers": [layer.member for layer in self.layers]}
        return json.dumps([entry], separators=(",", ":")).encode("utf-8")

    def stored_blobs(self) -> list[Blob]:
        """The config, then each layer once (a layer repeated in the manifest is stored once, named twice)."""
        blobs: dict[str, Blob] = {self.config.digest: self.config}
        for layer in self.layers:
            blobs.setdefault(layer.digest, layer)
        return list(blobs.values())

    def archive_size(self) -> int:
        """The byte length of the archive, known before a blob is read."""
        manifest = self.manifest_json()
        size = len(tar_header("manifest.json", len(manifest))) + len(manifest) + len(tar_padding(len(manifest)))
        size += sum(len(tar_header(folder, 0, directory=True)) for folder in _FOLDERS)
        for blob in self.stored_blobs():
            size += len(tar_header(blob.member, blob.size)) + blob.size + len(tar_padding(blob.size))
        return size + len(TAR_END)


_FOLDERS = ("blobs", BLOB_DIR.rstrip("/"))


def parse_image_manifest(manifest: t.Any, where: str) -> RegistryImage:
    """The config and layers of an image manifest (Docker schema 2 or OCI); refuses what would not load."""
    if isinstance(manifest, dict) and (manifest.get("schemaVersion") == 1 or manifest.get("mediaType") in SCHEMA1_TYPES):
        raise PullError(f"{where} is a Docker schema 1 manifest, which has no image id; push the image again with a current client")
    with _as_pull_error():
        config, layers = manifest_parts(manifest, "the manifest", where)
    config_blob = _blob(config, where, "config")
    if config.get("mediaType") not in (None, *CONFIG_TYPES):
        raise PullError(f"{where}: the config is {config.get('mediaType')}, not a container image config; this is not a container image")
    if config_blob.size > CONFIG_SIZE_LIMIT:
        raise PullError(f"{where}: the config is {config_blob.size} bytes; an image config is small, the manifest is broken")
    return RegistryImage(config_blob, tuple(_layer_blob(layer, position, where) for position, layer in enumerate(layers)))


def _layer_blob(layer: dict, position: int, where: str) -> Blob:
    media_type = str(layer.get("mediaType") or "")
    described = f"{where}: layer {position} ({layer.get('digest')})"
    if "foreign" in media_type or "nondistributable" in media_type or layer.get("urls"):
        raise PullError(f"{described} is a foreign (non-distributable) layer, which the registry does not serve; such images cannot be "
                        "stored from a registry: store them from a daemon that has them (source: local)")
    if "zstd" in media_type:
        raise PullError(f"{described} is zstd-compressed ({media_type}); Docker 20.10's `docker load` cannot read zstd layers, so the "
                        "stored image would not load on compute nodes with it: push the image with gzip layers")
    if media_type and media_type not in LOADABLE_LAYER_TYPES:
        raise PullError(f"{described} has media type {media_type}, which `docker load` cannot read; push the image with gzip layers")
    return _blob(layer, where, f"layer {position}")


def _blob(descriptor: dict, where: str, what: str) -> Blob:
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise PullError(f"{where}: the {what} has no size; the manifest is broken")
    with _as_pull_error():
        blob_member_name(digest, where)
    return Blob(t.cast(str, digest), size)


@contextlib.contextmanager
def _as_pull_error() -> t.Iterator[None]:
    """Re-raise the shared parsers' ArchiveError as a PullError: here the manifest came from a registry."""
    try:
        yield
    except ArchiveError as exc:
        raise PullError(str(exc).replace("the archive is damaged", "the registry's manifest is broken")) from None


BlobChunks = t.Callable[[Blob], t.Iterable[bytes]]


def archive_chunks(image: RegistryImage, config: bytes, blob_chunks: BlobChunks, where: str) -> t.Iterator[bytes]:
    """The archive's bytes: `config` is the config blob already read; layers come from `blob_chunks`, each checked to
    be exactly the size the manifest gives (a tar header promised it)."""
    manifest = image.manifest_json()
    yield tar_header("manifest.json", len(manifest)) + manifest + tar_padding(len(manifest))
    for folder in _FOLDERS:
        yield tar_header(folder, 0, directory=True)
    for blob in image.stored_blobs():
        yield tar_header(blob.member, blob.size)
        if blob.digest == image.config.digest:
            yield config
        else:
            yield from _sized(blob_chunks(blob), blob, where)
        yield tar_padding(blob.size)
    yield TAR_END


def _sized(chunks: t.Iterable[bytes], blob: Blob, where: str) -> t.Iterator[bytes]:
    served = 0
    for chunk in chunks:
        served += len(chunk)
        if served > blob.size:
            break
        yield chunk
    if served != blob.size:
        raise PullError(f"{where}: the registry served {'more than' if served > blob.size else 'only'} {min(served, blob.size)} bytes "
                        f"for blob {blob.digest}, whose size the manifest gives as {blob.size}; the registry's storage is damaged")
