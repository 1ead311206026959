# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This module util is PRIVATE to the arvados.cluster collection: it may change at any time.
# Do not use it from other collections or standalone plugins/modules.

"""Where the bytes of a Docker image come from: the local daemon, a registry pull, or an archive file.

Every source answers two questions. ``identify()`` tells the image's identity cheaply: its id is the digest of
its config, the id ``docker load`` recreates. ``open_stream()`` opens the docker-archive tar (what
``docker save`` writes) to store in Keep, read with memory bounded independent of the image size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import traceback
import typing as t
from urllib.parse import quote

try:
    import requests
    from docker import errors as docker_errors
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None


READ_CHUNK_SIZE = 1024 * 1024
# manifest.json, index.json, OCI manifests and image configs are small; a bigger one means a damaged archive.
METADATA_SIZE_LIMIT = 16 * 1024 * 1024
# What identifying an image on the containerd store may keep of the small blobs it passes in the save stream.
BLOB_CACHE_LIMIT = 32 * 1024 * 1024

BLOB_DIR = "blobs/sha256/"
PULL_POLICIES = ("always", "missing")
ZERO_TIME = "0001-01-01T00:00:00Z"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_TAG = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
    + r":\w[\w.-]{0,127}"
)
_DOCKER_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}
_COMPRESSION_MAGIC = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd -d"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"BZh", "bzip2", "bunzip2"),
)
_LAYER_MEDIA_TYPES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)


@dataclasses.dataclass(frozen=True)
class ImageIdentity:
    """Who an image is, as Arvados records it.

    ``image_id`` is ``sha256:<64 hex>``, the digest of the image config (the Keep file is ``<image_id>.tar``);
    ``created`` is the config's ``created`` ("" when it has none); ``size`` is the byte length of the stream
    ``open_stream()`` yields, when known in advance.
    """

    image_id: str
    created: str
    repo_tags: t.List[str]
    size: t.Optional[int] = None


class ImageSourceError(Exception):
    """The image cannot be identified or read; the message names the input and the fix."""


class DaemonUnavailable(ImageSourceError):
    """The Docker daemon cannot be reached (callers may fall back to what the cluster already holds)."""


class ImageNotFound(ImageSourceError):
    """The Docker daemon does not have the image (callers may fall back to what the cluster already holds)."""


class ArchiveError(ImageSourceError):
    """The archive file is missing, not an image archive, damaged, or ambiguous."""


class PullError(ImageSourceError):
    """The registry pull failed: unknown name or tag, refused credentials, unreachable registry."""


# ---------------------------------------------------------------------------------------------------------
# Pure helpers: digests, manifest.json and index.json parsing, names, platforms, tar headers.
# ---------------------------------------------------------------------------------------------------------

def config_digest(config_bytes: bytes) -> str:
    """The image id of a config: the sha256 of its exact bytes, as ``docker load`` computes it."""
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest()


def blob_member_name(digest: str, where: str) -> str:
    """The OCI layout member holding a blob, e.g. ``blobs/sha256/<hex>``."""
    algorithm, _sep, hex_digest = digest.partition(":")
    if algorithm != "sha256" or not _HEX64.fullmatch(hex_digest):
        raise ArchiveError(f"{where}: unsupported blob digest {digest!r}: only sha256 digests are supported")
    return BLOB_DIR + hex_digest


def member_name(name: str) -> str:
    """A tar member name as archives spell it differently: ``./a//b`` and ``/a/b`` are ``a/b``."""
    return posixpath.normpath("/" + name).lstrip("/")


def load_json(raw: bytes, what: str, where: str) -> t.Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ArchiveError(f"{where}: {what} is not valid JSON ({exc}); the archive is damaged, save it again") from exc


def _is_string_list(value: t.Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def parse_docker_manifest(raw: bytes, where: str) -> list[dict]:
    """The entries of a docker-archive ``manifest.json``: each has ``Config``, ``Layers`` and maybe ``RepoTags``."""
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
    """The descriptors an OCI image index (``index.json`` or a nested index blob) lists."""
    return index_descriptors(load_json(raw, what, where), what, where)


def index_descriptors(index: t.Any, what: str, where: str) -> list[dict]:
    descriptors = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descriptors, list) or not all(isinstance(item, dict) and isinstance(item.get("digest"), str) for item in descriptors):
        raise ArchiveError(f"{where}: {what} is not an OCI image index (no manifests list); the archive is damaged")
    return descriptors


def parse_oci_manifest(raw: bytes, what: str, where: str) -> tuple[dict, list[dict]]:
    """An OCI (or Docker v2) image manifest as its config descriptor and its layer descriptors."""
    return manifest_parts(load_json(raw, what, where), what, where)


def manifest_parts(manifest: t.Any, what: str, where: str) -> tuple[dict, list[dict]]:
    config = manifest.get("config") if isinstance(manifest, dict) else None
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str) or not isinstance(layers, list):
        raise ArchiveError(f"{where}: {what} is not an image manifest (no config or layers); the archive is damaged")
    if not all(isinstance(layer, dict) and isinstance(layer.get("digest"), str) for layer in layers):
        raise ArchiveError(f"{where}: {what} lists a layer without a digest; the archive is damaged")
    return config, layers


def is_image_index(document: t.Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("manifests"), list)


def config_created(config: dict) -> str:
    created = config.get("created")
    return created if isinstance(created, str) else ""


def normalize_repo_tag(name: str) -> str:
    """Docker's short spelling of a name: ``docker.io/library/x`` is ``x``, and no tag means ``:latest``."""
    for prefix in _DOCKER_HUB_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def names_match(wanted: str, names: t.Iterable[str]) -> bool:
    return any(name == wanted or normalize_repo_tag(name) == normalize_repo_tag(wanted) for name in names)


def is_full_repo_tag(name: str) -> bool:
    """Whether ``name`` is ``repo:tag`` that ``docker load`` accepts in RepoTags, not a bare tag or a digest."""
    return bool(_REPO_TAG.fullmatch(name))


def descriptor_names(descriptor: dict) -> list[str]:
    annotations = descriptor.get("annotations")
    if not isinstance(annotations, dict):
        return []
    keys = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
    return [annotations[key] for key in keys if isinstance(annotations.get(key), str)]


def descriptor_repo_tags(descriptor: dict) -> list[str]:
    """RepoTags for a converted archive: the first annotation naming the image in full, as ``repo:tag``."""
    full_names = [name for name in descriptor_names(descriptor) if is_full_repo_tag(name)]
    return full_names[:1]


def parse_platform(platform: str) -> tuple[str, str, str | None]:
    """``linux/arm64/v8`` as (os, architecture, variant), architecture spelled as OCI spells it."""
    parts = platform.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageSourceError(f"platform {platform!r} is not os/architecture[/variant], e.g. linux/amd64")
    variant = parts[2] if len(parts) == 3 else None
    return parts[0], _ARCH_ALIASES.get(parts[1], parts[1]), variant


def platform_matches(os_name: t.Any, architecture: t.Any, variant: t.Any, wanted: tuple[str, str, str | None]) -> bool:
    wanted_os, wanted_architecture, wanted_variant = wanted
    architecture = _ARCH_ALIASES.get(str(architecture).lower(), str(architecture).lower())
    if str(os_name).lower() != wanted_os or architecture != wanted_architecture:
        return False
    return wanted_variant is None or str(variant or "").lower() == wanted_variant


def descriptor_platform(descriptor: dict) -> dict:
    platform = descriptor.get("platform")
    return platform if isinstance(platform, dict) else {}


def describe_platform(platform: dict) -> str:
    parts = [platform.get("os") or "?", platform.get("architecture") or "?"]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(str(part) for part in parts)


def is_attestation(descriptor: dict) -> bool:
    """Build attestations (provenance, SBOM) ride in indexes as pseudo-images of platform unknown/unknown."""
    annotations = descriptor.get("annotations")
    if isinstance(annotations, dict) and "vnd.docker.reference.type" in annotations:
        return True
    return descriptor_platform(descriptor).get("os") == "unknown"


def select_platform_descriptor(descriptors: list[dict], platform: tuple[str, str, str | None] | None, where: str) -> dict:
    """The one image of a multi-platform index to use: the one of ``platform``, or the only one there is."""
    images = [item for item in descriptors if not is_attestation(item)]
    if platform is not None:
        images = [item for item in images if _descriptor_on_platform(item, platform)]
    if len(images) == 1:
        return images[0]
    available = ", ".join(describe_platform(descriptor_platform(item)) for item in descriptors if not is_attestation(item)) or "none"
    if images:
        raise ArchiveError(f"{where} holds the image for several platforms ({available}); choose one with the platform option")
    wanted = "/".join(part for part in platform if part) if platform else "any platform"
    raise ArchiveError(f"{where} has no image for {wanted} (platforms it has: {available})")


def _descriptor_on_platform(descriptor: dict, platform: tuple[str, str, str | None]) -> bool:
    described = descriptor_platform(descriptor)
    return platform_matches(described.get("os"), described.get("architecture"), described.get("variant"), platform)


def select_by_ref(candidates: list, names_of: t.Callable[[t.Any], list[str]], ref: str | None, where: str, listed_in: str) -> t.Any:
    """The one image of a multi-image archive to use: the only one there is, else the one named ``ref``."""
    if ref is not None and len(candidates) > 1:
        candidates = [candidate for candidate in candidates if names_match(ref, names_of(candidate))]
        if not candidates:
            raise ArchiveError(f"{where}: no image named {ref} in its {listed_in}; check the name (`tar -xOf {where} {listed_in}` lists them)")
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(", ".join(names_of(candidate)) or "(untagged)" for candidate in candidates)
    raise ArchiveError(f"{where} holds {len(candidates)} images ({names}); choose one by giving its name (repo:tag)")


# ---------------------------------------------------------------------------------------------------------
# Streams: a file-like view of byte chunks, and tar archives generated member by member.
# ---------------------------------------------------------------------------------------------------------

class _ChunkReader(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks; it holds at most one chunk at a time."""

    def __init__(self, chunks: t.Iterable[bytes], on_close: t.Callable[[], None] | None = None) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._on_close = on_close
        self._released = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        if not self._pending:
            self._pending = memoryview(self._next_chunk())
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _next_chunk(self) -> bytes:
        for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    def close(self) -> None:
        try:
            if not self._released:
                self._released = True
                self._pending = memoryview(b"")
                self._release_source()
        finally:
            super().close()

    def _release_source(self) -> None:
        close_chunks = getattr(self._chunks, "close", None)
        if close_chunks is not None:
            close_chunks()
        if self._on_close is not None:
            self._on_close()


def open_chunk_stream(chunks: t.Iterable[bytes], on_close: t.Callable[[], None] | None = None) -> io.BufferedReader:
    """A buffered binary reader over ``chunks``: ``read(n)`` returns n bytes until the end; memory stays bounded."""
    return io.BufferedReader(_ChunkReader(chunks, on_close), buffer_size=READ_CHUNK_SIZE)


def tar_header(name: str, size: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = 0 if directory else size
    # A fixed time makes converting the same image always give the same bytes (and the same Keep blocks).
    info.mtime = 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)


@dataclasses.dataclass(frozen=True)
class TarPiece:
    """One member of a generated tar: its header, then either ``data`` or ``length`` bytes of the source file."""

    header: bytes
    data: bytes = b""
    source_offset: int | None = None
    length: int = 0

    @property
    def data_size(self) -> int:
        return self.length if self.source_offset is not None else len(self.data)

    @property
    def size(self) -> int:
        return len(self.header) + self.data_size + len(tar_padding(self.data_size))


def docker_archive_pieces(manifest_json: bytes, members: list[tuple[str, tarfile.TarInfo]]) -> list[TarPiece]:
    """A docker-archive: ``manifest.json`` first (so a streaming reader learns the image early), the folders,
    then each (name, source member) copied from the source archive."""
    pieces = [TarPiece(tar_header("manifest.json", len(manifest_json)), data=manifest_json)]
    folders = sorted({posixpath.dirname(name) for name, _member in members} - {""})
    for folder in _with_parent_folders(folders):
        pieces.append(TarPiece(tar_header(folder, 0, directory=True)))
    for name, member in members:
        pieces.append(TarPiece(tar_header(name, member.size), source_offset=member.offset_data, length=member.size))
    return pieces


def _with_parent_folders(folders: list[str]) -> list[str]:
    every = set()
    for folder in folders:
        while folder:
            every.add(folder)
            folder = posixpath.dirname(folder)
    return sorted(every)


def tar_size(pieces: list[TarPiece]) -> int:
    return sum(piece.size for piece in pieces) + len(TAR_END)


def tar_chunks(source_path: str, pieces: list[TarPiece]) -> t.Iterator[bytes]:
    """The bytes of the tar ``pieces`` describe, reading copied members from ``source_path`` in chunks."""
    with open(source_path, "rb") as source:
        for piece in pieces:
            yield piece.header
            if piece.source_offset is None:
                yield piece.data
            else:
                yield from _file_range_chunks(source, piece.source_offset, piece.length, source_path)
            yield tar_padding(piece.data_size)
    yield TAR_END


def _file_range_chunks(source: t.BinaryIO, offset: int, length: int, where: str) -> t.Iterator[bytes]:
    source.seek(offset)
    remaining = length
    while remaining:
        chunk = source.read(min(remaining, READ_CHUNK_SIZE))
        if not chunk:
            raise ArchiveError(f"{where} ended while being read (was it truncated or replaced meanwhile?); save it again")
        remaining -= len(chunk)
        yield chunk


# ---------------------------------------------------------------------------------------------------------
# Archive files: the tar index, docker-archive and OCI layouts.
# ---------------------------------------------------------------------------------------------------------

class _ArchiveFile:
    """The members of a tar archive on disk, found by reading headers only (tarfile seeks past the data)."""

    def __init__(self, path: str) -> None:
        self.path = path
        _reject_unreadable(path)
        members, end_offset = _read_tar_headers(path)
        _check_complete(path, end_offset)
        self.members = {member_name(member.name): member for member in members}

    def has_file(self, name: str) -> bool:
        member = self.members.get(member_name(name))
        return member is not None and member.isfile()

    def member(self, name: str, listed_in: str) -> tarfile.TarInfo:
        """The regular file ``name`` is, following links: `docker save` stores a repeated layer as a symlink."""
        wanted = member_name(name)
        for _hop in range(16):
            member = self.members.get(wanted)
            if member is None:
                raise ArchiveError(f"{self.path} lacks {name}, which its {listed_in} lists; the archive is incomplete, save it again")
            if member.isfile():
                return member
            if member.issym():
                wanted = member_name(posixpath.join(posixpath.dirname(wanted), member.linkname))
            elif member.islnk():
                wanted = member_name(member.linkname)
            else:
                break
        raise ArchiveError(f"{self.path}: {name}, which its {listed_in} lists, is not a file; the archive is damaged")

    def read_small(self, name: str, listed_in: str) -> bytes:
        member = self.member(name, listed_in)
        if member.size > METADATA_SIZE_LIMIT:
            raise ArchiveError(f"{self.path}: {name} is {member.size} bytes, too big for image metadata; the archive is damaged")
        with open(self.path, "rb") as source:
            return b"".join(_file_range_chunks(source, member.offset_data, member.size, self.path))


def _reject_unreadable(path: str) -> None:
    if not os.path.isfile(path):
        raise ArchiveError(f"{path}: no such file; give the path of a `docker save` or OCI image archive on the managed node")
    try:
        with open(path, "rb") as source:
            head = source.read(8)
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc}") from exc
    for magic, compression, command in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            raise ArchiveError(f"{path} is {compression}-compressed; Keep stores the plain tar `docker save` writes: decompress it first ({command})")


def _read_tar_headers(path: str) -> tuple[list[tarfile.TarInfo], int]:
    try:
        archive = tarfile.open(path, mode="r:")
    except tarfile.TarError as exc:
        raise ArchiveError(f"{path} is not a tar archive ({exc}); expected `docker save` output or an OCI archive (skopeo copy ... oci-archive:PATH)") from exc
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc}") from exc
    with archive:
        try:
            return archive.getmembers(), archive.offset
        except tarfile.TarError as exc:
            raise ArchiveError(f"{path} is truncated or damaged ({exc}); copy or save the archive again") from exc


def _check_complete(path: str, end_offset: int) -> None:
    """tarfile stops quietly at a damaged or missing header; an intact archive ends with a zero block there."""
    with open(path, "rb") as source:
        source.seek(end_offset)
        end_block = source.read(tarfile.BLOCKSIZE)
    if end_block != b"\0" * tarfile.BLOCKSIZE:
        raise ArchiveError(f"{path} is truncated or damaged at byte {end_offset} (no tar header or end-of-archive marker); copy or save the archive again")


@dataclasses.dataclass(frozen=True)
class _ArchivePlan:
    """What an archive holds and how to stream it: the file unchanged (``pieces`` None) or a docker-archive
    generated from some of its members."""

    identity: ImageIdentity
    archive_format: str
    pieces: t.Optional[t.List[TarPiece]] = None


def _plan_docker_archive(archive: _ArchiveFile, ref: str | None, platform: tuple[str, str, str | None] | None) -> _ArchivePlan:
    entries = parse_docker_manifest(archive.read_small("manifest.json", "file list"), archive.path)
    if len(entries) > 1 and ref is None and platform is not None:
        entries = [entry for entry in entries if _entry_on_platform(archive, entry, platform)] or entries
    entry = select_by_ref(entries, entry_repo_tags, ref, archive.path, "manifest.json")
    config = archive.read_small(entry["Config"], "manifest.json")
    layers = [(member_name(name), archive.member(name, "manifest.json")) for name in entry["Layers"]]
    config_json = _config_object(config, archive.path)
    if len(entries) == 1:
        size = os.path.getsize(archive.path)
        return _ArchivePlan(ImageIdentity(config_digest(config), config_created(config_json), entry_repo_tags(entry), size), "docker-archive")
    # Several images in one archive: keep only the chosen one, so the Keep file holds exactly the image it names.
    config_name = member_name(entry["Config"])
    members = [(config_name, archive.member(config_name, "manifest.json"))] + _unique(layers)
    pieces = _docker_archive_pieces_for(config_name, entry_repo_tags(entry), layers, members)
    identity = ImageIdentity(config_digest(config), config_created(config_json), entry_repo_tags(entry), tar_size(pieces))
    return _ArchivePlan(identity, "docker-archive", pieces)


def _entry_on_platform(archive: _ArchiveFile, entry: dict, platform: tuple[str, str, str | None]) -> bool:
    config = _config_object(archive.read_small(entry["Config"], "manifest.json"), archive.path)
    return platform_matches(config.get("os"), config.get("architecture"), config.get("variant"), platform)


def _plan_oci_archive(archive: _ArchiveFile, ref: str | None, platform: tuple[str, str, str | None] | None) -> _ArchivePlan:
    descriptors = [item for item in parse_oci_index(archive.read_small("index.json", "file list"), "index.json", archive.path) if not is_attestation(item)]
    if len(descriptors) > 1 and ref is None and platform is not None:
        descriptors = [item for item in descriptors if _descriptor_on_platform(item, platform)] or descriptors
    chosen = select_by_ref(descriptors, descriptor_names, ref, archive.path, "index.json")
    config_descriptor, layer_descriptors = _resolve_image_manifest(archive, chosen, platform)
    config_name = blob_member_name(config_descriptor["digest"], archive.path)
    config = archive.read_small(config_name, "image manifest")
    if config_digest(config) != config_descriptor["digest"]:
        raise ArchiveError(f"{archive.path}: the config blob does not match its digest {config_descriptor['digest']}; the archive is damaged")
    layer_names = [_layer_member_name(layer, archive.path) for layer in layer_descriptors]
    layers = [(name, archive.member(name, "image manifest")) for name in layer_names]
    repo_tags = descriptor_repo_tags(chosen)
    members = [(config_name, archive.member(config_name, "image manifest"))] + _unique(layers)
    pieces = _docker_archive_pieces_for(config_name, repo_tags, layers, members)
    identity = ImageIdentity(config_digest(config), config_created(_config_object(config, archive.path)), repo_tags, tar_size(pieces))
    return _ArchivePlan(identity, "oci-archive", pieces)


def _resolve_image_manifest(archive: _ArchiveFile, descriptor: dict, platform: tuple[str, str, str | None] | None) -> tuple[dict, list[dict]]:
    """Follow (possibly nested) indexes from ``descriptor`` down to one image manifest."""
    for _depth in range(8):
        name = blob_member_name(descriptor["digest"], archive.path)
        document = load_json(archive.read_small(name, "index.json"), name, archive.path)
        if not is_image_index(document):
            return manifest_parts(document, name, archive.path)
        descriptor = select_platform_descriptor(index_descriptors(document, name, archive.path), platform, archive.path)
    raise ArchiveError(f"{archive.path}: image indexes nest too deep; the archive is damaged")


def _layer_member_name(layer: dict, where: str) -> str:
    media_type = layer.get("mediaType", "application/vnd.oci.image.layer.v1.tar")
    if media_type.endswith("+zstd"):
        raise ArchiveError(
            f"{where}: layer {layer['digest']} is zstd-compressed, which `docker load` of Docker 20.10 (as crunch-run uses it) cannot read; "
            "re-create the archive with gzip layers (skopeo copy --dest-compress-format gzip ...)"
        )
    if media_type not in _LAYER_MEDIA_TYPES:
        raise ArchiveError(f"{where}: layer {layer['digest']} has media type {media_type!r}, which `docker load` cannot read")
    return blob_member_name(layer["digest"], where)


def _docker_archive_pieces_for(config_name: str, repo_tags: list[str], layers: list[tuple[str, tarfile.TarInfo]],
                               members: list[tuple[str, tarfile.TarInfo]]) -> list[TarPiece]:
    manifest = [{"Config": config_name, "RepoTags": repo_tags or None, "Layers": [name for name, _member in layers]}]
    return docker_archive_pieces(json.dumps(manifest, separators=(",", ":")).encode(), members)


def _unique(members: list[tuple[str, tarfile.TarInfo]]) -> list[tuple[str, tarfile.TarInfo]]:
    """Identical layers appear once in the tar though the manifest lists them each time."""
    seen = set()
    unique = []
    for name, member in members:
        if name not in seen:
            seen.add(name)
            unique.append((name, member))
    return unique


def _config_object(config: bytes, where: str) -> dict:
    document = load_json(config, "the image config", where)
    if not isinstance(document, dict):
        raise ArchiveError(f"{where}: the image config is not a JSON object; the archive is damaged")
    return document


class ArchiveSource:
    """An image archive file: ``docker save`` output (classic, or Docker 25+ with an OCI layout inside) or a
    pure OCI archive (``skopeo copy ... oci-archive:PATH``). No Docker daemon is needed.

    A single-image docker-archive streams unchanged. A pure OCI archive streams as a docker-archive generated
    on the fly (config and layers byte-identical), which ``docker load`` of Docker 20.10 accepts. An archive
    with several images needs ``ref`` (repo:tag) to choose one, and then streams only that one; a
    multi-platform OCI index needs ``platform`` (os/arch[/variant]) unless it holds one platform.
    """

    def __init__(self, path: str | os.PathLike, ref: str | None = None, platform: str | None = None) -> None:
        self.path = os.fspath(path)
        self.ref = ref
        self.platform = platform
        self._plan: _ArchivePlan | None = None

    @property
    def archive_format(self) -> str:
        """``docker-archive`` or ``oci-archive``."""
        return self._archive_plan().archive_format

    @property
    def converted(self) -> bool:
        """Whether the stream is generated rather than the file itself."""
        return self._archive_plan().pieces is not None

    def identify(self) -> ImageIdentity:
        return self._archive_plan().identity

    def open_stream(self) -> t.BinaryIO:
        plan = self._archive_plan()
        if plan.pieces is not None:
            return open_chunk_stream(tar_chunks(self.path, plan.pieces))
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.path}: {exc}") from exc

    def _archive_plan(self) -> _ArchivePlan:
        if self._plan is None:
            platform = parse_platform(self.platform) if self.platform else None
            archive = _ArchiveFile(self.path)
            if archive.has_file("manifest.json"):
                self._plan = _plan_docker_archive(archive, self.ref, platform)
            elif archive.has_file("index.json"):
                self._plan = _plan_oci_archive(archive, self.ref, platform)
            else:
                raise ArchiveError(f"{self.path} has neither manifest.json nor index.json: it is not a `docker save` or OCI image archive")
        return self._plan


# ---------------------------------------------------------------------------------------------------------
# The Docker daemon: inspect, save, pull.
# ---------------------------------------------------------------------------------------------------------

def _require_docker_sdk() -> None:
    if not HAS_DOCKER:
        raise ImageSourceError("the Docker SDK for Python is required on the managed node for this source: pip install 'docker>=7.1'")


def _low_level_api(client: t.Any) -> t.Any:
    """The SDK's APIClient, given either a ``docker.DockerClient`` or the APIClient itself."""
    return getattr(client, "api", client)


PULL_HINT = "check the name and tag, and for a private registry log in on the Docker host (docker login) as the user the task runs as"


@contextlib.contextmanager
def _daemon_errors(action: str, ref: str) -> t.Iterator[None]:
    """Turn SDK and HTTP errors into this module's exceptions, naming the image and what was being done."""
    try:
        yield
    except docker_errors.APIError as exc:
        if action == "pull":
            raise PullError(f"pull {ref} failed: {exc.explanation or exc}; {PULL_HINT}") from exc
        if isinstance(exc, docker_errors.NotFound):
            raise ImageNotFound(f"image {ref} is not in the Docker daemon ({exc.explanation or exc}); pull it (source: pull) or load it (docker load)") from exc
        raise ImageSourceError(f"{action} {ref} failed: the Docker daemon answered {exc.explanation or exc}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise DaemonUnavailable(f"cannot reach the Docker daemon to {action} {ref} ({exc}); start Docker or set docker_host, or use an archive source") from exc


def _api_version_at_least(api: t.Any, wanted: tuple[int, int]) -> bool:
    try:
        return tuple(int(part) for part in str(api.api_version).split(".")[:2]) >= wanted
    except ValueError:
        return False


def _platform_json(platform: tuple[str, str, str | None]) -> str:
    described = {"os": platform[0], "architecture": platform[1]}
    if platform[2]:
        described["variant"] = platform[2]
    return json.dumps(described)


def inspect_created(inspect: dict) -> str:
    """The daemon's rendering of the config's ``created``: the same string for configs Docker wrote."""
    created = inspect.get("Created")
    return created if isinstance(created, str) and created != ZERO_TIME else ""


def _open_saved_image(api: t.Any, ref: str, platform: tuple[str, str, str | None] | None) -> t.Any:
    """The HTTP response of ``docker save``; its read timeout is lifted because dockerd 20.10 sends nothing
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
    """Whether ``Id`` is a manifest or index digest: so it is on the containerd image store (Docker 29's
    default for new installs), which Docker 28+ shows by giving images a ``Descriptor``."""
    if inspect.get("Descriptor"):
        return True
    with _daemon_errors("read the image store kind for", ref):
        driver_status = api.info().get("DriverStatus") or []
    return any(isinstance(pair, list) and len(pair) == 2 and str(pair[1]).startswith("io.containerd.snapshotter") for pair in driver_status)


def _on_platform(inspect: dict, wanted: tuple[str, str, str | None] | None) -> bool:
    return wanted is None or platform_matches(inspect.get("Os"), inspect.get("Architecture"), inspect.get("Variant"), wanted)


def inspect_platform(inspect: dict) -> tuple[str, str, str | None]:
    return parse_platform("/".join(part for part in (inspect.get("Os") or "linux", inspect.get("Architecture") or "amd64", inspect.get("Variant")) if part))


def config_digest_from_saved_archive(stream: t.BinaryIO, image_digest: str, platform: tuple[str, str, str | None], where: str) -> str:
    """The config digest of the image whose manifest (or index) digest is ``image_digest``, read from its
    ``docker save`` stream: follows index -> manifest -> config among the small blobs, stopping as soon as it
    knows; ``manifest.json`` (Docker 25+ writes one) settles it when it lists a single image."""
    blobs = _BlobCache()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                found = _learn_from_member(archive, member, blobs, image_digest, platform, where)
                if found:
                    return found
    except tarfile.TarError as exc:
        raise ImageSourceError(f"the `docker save` stream of {where} is not a readable tar ({exc})") from exc
    raise ImageSourceError(f"the `docker save` stream of {where} does not hold the config of {image_digest}; is the image complete?")


class _BlobCache(dict):
    """Small blobs seen so far in a save stream, by digest, up to ``BLOB_CACHE_LIMIT`` bytes in all."""

    def __init__(self) -> None:
        super().__init__()
        self.room = BLOB_CACHE_LIMIT

    def keep(self, digest: str, data: bytes) -> None:
        if len(data) <= self.room:
            self[digest] = data
            self.room -= len(data)


def _learn_from_member(archive: tarfile.TarFile, member: tarfile.TarInfo, blobs: _BlobCache, image_digest: str,
                       platform: tuple[str, str, str | None], where: str) -> str | None:
    name = member_name(member.name)
    if not member.isfile() or member.size > METADATA_SIZE_LIMIT:
        return None
    if name == "manifest.json":
        entries = parse_docker_manifest(_member_bytes(archive, member), where)
        hex_digest = posixpath.basename(entries[0]["Config"]).split(".")[0]
        return "sha256:" + hex_digest if len(entries) == 1 and _HEX64.fullmatch(hex_digest) else None
    if not name.startswith(BLOB_DIR):
        return None
    blobs.keep("sha256:" + name[len(BLOB_DIR):], _member_bytes(archive, member))
    return _follow_to_config_digest(blobs, image_digest, platform, where)


def _member_bytes(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    reader = archive.extractfile(member)
    return reader.read() if reader is not None else b""


def _follow_to_config_digest(blobs: dict, digest: str, platform: tuple[str, str, str | None], where: str) -> str | None:
    for _depth in range(8):
        raw = blobs.get(digest)
        if raw is None:
            return None
        document = load_json(raw, f"blob {digest}", where)
        if not is_image_index(document):
            config = document.get("config") if isinstance(document, dict) else None
            return config.get("digest") if isinstance(config, dict) else None
        digest = select_platform_descriptor(document["manifests"], platform, where)["digest"]
    return None


class LocalDaemonSource:
    """An image the Docker daemon holds, by ``repo:tag`` or id. ``client`` is a ``docker.DockerClient`` or its
    ``.api``; ``platform`` (os/arch[/variant]) picks one image of a multi-platform one on the containerd store.

    The stream is ``docker save`` of the image id as the daemon sends it, read chunk by chunk: saving by id, as
    arv-keepdocker does, gives the same bytes and so the same portable data hash as its uploads.
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
            self._identity = ImageIdentity(self._config_digest(inspect), inspect_created(inspect), list(inspect.get("RepoTags") or []))
        return self._identity

    def open_stream(self) -> t.BinaryIO:
        response = _open_saved_image(self._api, self._inspect()["Id"], self._wanted_platform())
        return open_chunk_stream(_response_chunks(response, self.ref), on_close=response.close)

    def _inspect(self) -> dict:
        if self._inspected is None:
            with _daemon_errors("inspect", self.ref):
                self._inspected = self._api.inspect_image(self.ref)
        return self._inspected

    def _wanted_platform(self) -> tuple[str, str, str | None] | None:
        return parse_platform(self.platform) if self.platform else None

    def _check_platform(self, inspect: dict) -> None:
        """The classic store holds one platform per tag: the asked one, or the image is not here."""
        if not _on_platform(inspect, self._wanted_platform()):
            found = "/".join(str(part) for part in (inspect.get("Os"), inspect.get("Architecture"), inspect.get("Variant")) if part)
            raise ImageNotFound(f"image {self.ref} in the Docker daemon is for {found}, not {self.platform}; pull it for {self.platform} (source: pull)")

    def _config_digest(self, inspect: dict) -> str:
        if not _uses_containerd_store(self._api, inspect, self.ref):
            self._check_platform(inspect)
            return inspect["Id"]
        # arvados/arvados#488: the containerd store's Id is a manifest digest, but `docker load` on crunch-run's
        # daemon recreates the image under its config digest, which only the saved image itself tells.
        platform = self._wanted_platform() or inspect_platform(inspect)
        with self.open_stream() as stream:
            return config_digest_from_saved_archive(stream, inspect["Id"], platform, self.ref)


def split_pull_reference(ref: str) -> tuple[str, str]:
    """``repo:tag`` or ``repo@sha256:...`` as (repository, tag or digest); no tag means ``latest``."""
    if "@" in ref:
        repository, digest = ref.split("@", 1)
        return repository, digest
    repository, _sep, last = ref.rpartition("/")
    name, colon, tag = last.partition(":")
    prefix = repository + "/" if repository else ""
    return prefix + name, tag if colon else "latest"


def is_image_id(ref: str) -> bool:
    return bool(_IMAGE_ID.fullmatch(ref))


class PullSource(LocalDaemonSource):
    """An image pulled into the Docker daemon from its registry, then read as a ``LocalDaemonSource``.

    ``policy`` ``missing`` pulls only when the daemon lacks ``ref`` (for ``platform``, when given); ``always``
    pulls. Registry credentials are the Docker host's own login (``~/.docker/config.json``), which the SDK
    reads. After ``identify()`` or ``open_stream()``, ``pulled`` tells whether a pull happened.
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
        if is_image_id(self.ref):
            raise PullError(f"cannot pull {self.ref}: an image id names no registry; give repo:tag")
        repository, tag = split_pull_reference(self.ref)
        with _daemon_errors("pull", self.ref):
            for message in self._api.pull(repository, tag=tag, stream=True, decode=True, platform=self.platform):
                if isinstance(message, dict) and message.get("error"):
                    raise PullError(f"pull {self.ref} failed: {message['error']}; {PULL_HINT}")
