# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""An image archive file as an image source: `docker save` output or an OCI archive, no Docker daemon needed.

The archive is indexed by reading its tar headers only; a member whose name leaves the archive fails it then. A
single-image docker-archive holding only what its layout names streams unchanged; anything else streams as a
docker-archive generated from the members its manifest names (see _tar_stream). Either way the stream is checked as
`docker load` would check it while it passes (see _archive_check), so a failed check stops the upload before any
collection is saved.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import dataclasses
import json
import collections
import os
import posixpath
import stat
import tarfile
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._archive_check import ArchiveCheck, check_member_name, checked_stream, is_layout_member
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import normalise_repo_tag, split_repo_tag
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import (
    METADATA_SIZE_LIMIT,
    ImageIdentity,
    blob_member_name,
    config_created,
    config_object,
    descriptor_names,
    descriptor_repo_tags,
    entry_repo_tags,
    index_descriptors,
    is_image_index,
    load_json,
    manifest_parts,
    member_name,
    parse_docker_manifest,
    parse_oci_index,
)
from ansible_collections.arvados.cluster.plugins.module_utils._platform import (
    Platform,
    descriptor_on_platform,
    is_attestation,
    parse_platform,
    platform_matches,
    select_platform_descriptor,
)
from ansible_collections.arvados.cluster.plugins.module_utils._tar_stream import (
    TarPiece,
    docker_archive_pieces,
    file_range_chunks,
    open_chunk_stream,
    tar_chunks,
    tar_size,
)

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

# A member's name and its tar header in the source archive.
Member = tuple[str, tarfile.TarInfo]


# ---------------------------------------------------------------------------------------------------------
# The tar index of an archive file.
# ---------------------------------------------------------------------------------------------------------

class _ArchiveFile:
    """The members of a tar archive on disk, found by reading headers only (tarfile seeks past the data)."""

    def __init__(self, path: str) -> None:
        self.path = path
        _reject_unreadable(path)
        members, end_offset = _read_tar_headers(path)
        _check_complete(path, end_offset)
        names = [check_member_name(member.name, member, path) for member in members]
        self.members = dict(zip(names, members))
        self.repeated = {name for name, count in collections.Counter(names).items() if count > 1}

    def has_file(self, name: str) -> bool:
        member = self.members.get(member_name(name))
        return member is not None and member.isfile()

    def member(self, name: str, listed_in: str) -> tarfile.TarInfo:
        """The regular file `name` is, following links: `docker save` stores a repeated layer as a symlink."""
        wanted = member_name(name)
        for _hop in range(16):
            if wanted in self.repeated:
                raise ArchiveError(f"{self.path}: {wanted}, which its {listed_in} lists, appears more than once; which one `docker load` "
                                   "reads is ambiguous, the archive is damaged or hostile")
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
            return b"".join(file_range_chunks(source, member.offset_data, member.size, self.path))


# What a path is when it is not a regular file; an archive is read twice (its index, then its bytes), so it must be one.
_NOT_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _reject_unreadable(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file; give the path of a `docker save` or OCI image archive on the managed node") from None
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc}") from exc
    for is_kind, kind in _NOT_FILES:
        if is_kind(mode):
            raise ArchiveError(f"{path} is {kind}, not a regular file (an archive is read twice, its index then its bytes); "
                               "give the path of a `docker save` or OCI image archive file on the managed node")
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


# ---------------------------------------------------------------------------------------------------------
# Choosing one image of an archive.
# ---------------------------------------------------------------------------------------------------------

def names_match(wanted: str, names: t.Iterable[str]) -> bool:
    """Whether one of `names` is `wanted`, spelled either way: `docker.io/library/x` is `x:latest`."""
    return any(name == wanted or normalise_repo_tag(name) == normalise_repo_tag(wanted) for name in names)


def select_by_ref(candidates: list, names_of: t.Callable[[t.Any], list[str]], ref: str | None, where: str, listed_in: str) -> t.Any:
    """The one image of a multi-image archive to use: the only one there is, else the one named `ref`."""
    if ref is not None and len(candidates) > 1:
        candidates = [candidate for candidate in candidates if names_match(ref, names_of(candidate))]
        if not candidates:
            raise ArchiveError(f"{where}: no image named {ref} in its {listed_in}; check the name (`tar -xOf {where} {listed_in}` lists them)")
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(", ".join(names_of(candidate)) or "(untagged)" for candidate in candidates)
    raise ArchiveError(f"{where} holds {len(candidates)} images ({names}); choose one by giving its name (repo:tag)")


def archive_name_warning(wanted: str, names: list[str], where: str) -> str | None:
    """The warning for storing an archive's image as `wanted` (a stored `repo:tag`) though the archive names it otherwise.

    `names` are its RepoTags (docker-archive) or its name annotations (OCI), where a name without `:` or `/` is a tag
    alone (`org.opencontainers.image.ref.name` is often just that). None when the archive names no image (as
    `docker save <id>` writes it) or names `wanted`.
    """
    if not names or any(_names_wanted(name, wanted) for name in names):
        return None
    return (f"archive_path: {where} names its image {', '.join(names)}, not {wanted}; it is stored as {wanted} all the same. "
            f"Check that the archive holds the image meant for {wanted}, or give one of its names as name")


def _names_wanted(name: str, wanted: str) -> bool:
    if ":" not in name and "/" not in name:
        return name == split_repo_tag(wanted)[1]
    return normalise_repo_tag(name) == wanted


# ---------------------------------------------------------------------------------------------------------
# The docker-archive and OCI layouts.
# ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _ArchivePlan:
    """What an archive holds and how to stream it: the file unchanged (`pieces` None) or a docker-archive
    generated from some of its members."""

    identity: ImageIdentity
    archive_format: str
    pieces: list[TarPiece] | None = None
    names: list[str] = dataclasses.field(default_factory=list)


def _plan_docker_archive(archive: _ArchiveFile, ref: str | None, platform: Platform | None) -> _ArchivePlan:
    entries = parse_docker_manifest(archive.read_small("manifest.json", "file list"), archive.path)
    if len(entries) > 1 and ref is None and platform is not None:
        entries = [entry for entry in entries if _entry_on_platform(archive, entry, platform)] or entries
    entry = select_by_ref(entries, entry_repo_tags, ref, archive.path, "manifest.json")
    config = archive.read_small(entry["Config"], "manifest.json")
    layers = [(member_name(name), archive.member(name, "manifest.json")) for name in entry["Layers"]]
    named = {member_name(entry["Config"])} | {name for name, _member in layers}
    if len(entries) == 1 and all(member.isdir() or is_layout_member(name, named) for name, member in archive.members.items()):
        size = os.path.getsize(archive.path)
        return _ArchivePlan(_identity(config, entry_repo_tags(entry), size, archive.path), "docker-archive", names=entry_repo_tags(entry))
    # Several images, or members the manifest does not name: keep only the image, so the Keep file holds exactly it.
    config_name = member_name(entry["Config"])
    pieces = _docker_archive_pieces_for((config_name, archive.member(config_name, "manifest.json")), entry_repo_tags(entry), layers)
    return _ArchivePlan(_identity(config, entry_repo_tags(entry), tar_size(pieces), archive.path), "docker-archive", pieces, entry_repo_tags(entry))


def _entry_on_platform(archive: _ArchiveFile, entry: dict, platform: Platform) -> bool:
    config = config_object(archive.read_small(entry["Config"], "manifest.json"), archive.path)
    return platform_matches(config.get("os"), config.get("architecture"), config.get("variant"), platform)


def _plan_oci_archive(archive: _ArchiveFile, ref: str | None, platform: Platform | None) -> _ArchivePlan:
    index = parse_oci_index(archive.read_small("index.json", "file list"), "index.json", archive.path)
    descriptors = [item for item in index if not is_attestation(item)]
    if len(descriptors) > 1 and ref is None and platform is not None:
        descriptors = [item for item in descriptors if descriptor_on_platform(item, platform)] or descriptors
    chosen = select_by_ref(descriptors, descriptor_names, ref, archive.path, "index.json")
    config_descriptor, layer_descriptors = _resolve_image_manifest(archive, chosen, platform)
    config_name = blob_member_name(config_descriptor["digest"], archive.path)
    config = archive.read_small(config_name, "image manifest")
    if str(ImageId.of_config(config)) != config_descriptor["digest"]:
        raise ArchiveError(f"{archive.path}: the config blob does not match its digest {config_descriptor['digest']}; the archive is damaged")
    layer_names = [_layer_member_name(layer, archive.path) for layer in layer_descriptors]
    layers = [(name, archive.member(name, "image manifest")) for name in layer_names]
    repo_tags = descriptor_repo_tags(chosen)
    pieces = _docker_archive_pieces_for((config_name, archive.member(config_name, "image manifest")), repo_tags, layers)
    return _ArchivePlan(_identity(config, repo_tags, tar_size(pieces), archive.path), "oci-archive", pieces, descriptor_names(chosen))


def _identity(config: bytes, repo_tags: list[str], size: int, where: str) -> ImageIdentity:
    """The identity of the image whose config is `config`: its id is their digest."""
    return ImageIdentity(str(ImageId.of_config(config)), config_created(config_object(config, where)), repo_tags, size)


def _resolve_image_manifest(archive: _ArchiveFile, descriptor: dict, platform: Platform | None) -> tuple[dict, list[dict]]:
    """Follow (possibly nested) indexes from `descriptor` down to one image manifest."""
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


def _docker_archive_pieces_for(config: Member, repo_tags: list[str], layers: list[Member]) -> list[TarPiece]:
    """A docker-archive of one image: its config, then each layer once, though its manifest may list one twice."""
    manifest = [{"Config": config[0], "RepoTags": repo_tags or None, "Layers": [name for name, _member in layers]}]
    members = [config] + _unique(layers)
    return docker_archive_pieces(json.dumps(manifest, separators=(",", ":")).encode(), members)


def _unique(members: list[Member]) -> list[Member]:
    """Identical layers appear once in the tar though the manifest lists them each time."""
    seen = set()
    unique = []
    for name, member in members:
        if name not in seen:
            seen.add(name)
            unique.append((name, member))
    return unique


# ---------------------------------------------------------------------------------------------------------
# The source.
# ---------------------------------------------------------------------------------------------------------

class ArchiveSource:
    """An image archive file: `docker save` output (classic, or Docker 25+ with an OCI layout inside) or a
    pure OCI archive (`skopeo copy ... oci-archive:PATH`). No Docker daemon is needed.

    A single-image docker-archive streams unchanged. A pure OCI archive streams as a docker-archive generated
    on the fly (config and layers byte-identical), which `docker load` of Docker 20.10 accepts. An archive
    with several images needs `ref` (repo:tag) to choose one, and then streams only that one; a
    multi-platform OCI index needs `platform` (os/arch[/variant]) unless it holds one platform.

    `warn` is told, once, when the archive names its image otherwise than `ref` (see archive_name_warning).
    """

    def __init__(self, path: str | os.PathLike, ref: str | None = None, platform: str | None = None,
                 warn: t.Callable[[str], None] | None = None) -> None:
        self.path = os.fspath(path)
        self.ref = ref
        self.platform = platform
        self.warn = warn
        self._plan: _ArchivePlan | None = None

    @property
    def archive_format(self) -> str:
        """`docker-archive` or `oci-archive`."""
        return self._archive_plan().archive_format

    @property
    def converted(self) -> bool:
        """Whether the stream is generated rather than the file itself."""
        return self._archive_plan().pieces is not None

    def identify(self) -> ImageIdentity:
        return self._archive_plan().identity

    def open_stream(self) -> t.BinaryIO:
        """The stored tarball, checked as it is read (see _archive_check): its last read raises if `docker load` would refuse it."""
        plan = self._archive_plan()
        return checked_stream(self._open_plain(plan), ArchiveCheck(plan.identity.image_id, self.path))

    def _open_plain(self, plan: _ArchivePlan) -> t.BinaryIO:
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
            warning = archive_name_warning(self.ref, self._plan.names, self.path) if self.ref else None
            if warning and self.warn:
                self.warn(warning)
        return self._plan
