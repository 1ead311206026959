# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Docker and OCI image archives built in memory, for the unit tests of the image sources."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
CREATED = "2024-05-06T07:08:09.123456789+02:00"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Link:
    """A tar member that is a symbolic link (or, with hard=True, a hard link) to ``target``."""

    def __init__(self, target: str, hard: bool = False):
        self.target, self.hard = target, hard


def make_tar(members: list[tuple[str, bytes | Link | None]]) -> bytes:
    """A tar of (name, data) members; data None makes a folder, a Link a link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None or isinstance(data, Link):
                info.type = tarfile.DIRTYPE if data is None else tarfile.LNKTYPE if data.hard else tarfile.SYMTYPE
                info.linkname = data.target if data is not None else ""
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def diff_id(blob: bytes) -> str:
    """What a config's rootfs.diff_ids holds for a layer: the digest of the uncompressed tar."""
    return "sha256:" + sha(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)


def image_config(marker: str, architecture: str = "amd64", variant: str | None = None, created: str | None = CREATED,
                 layers: list[bytes] = ()) -> bytes:
    """A config whose diff_ids name `layers`, so that an archive of it loads (and passes the module's check)."""
    rootfs = {"type": "layers", "diff_ids": [diff_id(blob) for blob in layers]}
    config = {"architecture": architecture, "os": "linux", "config": {"Cmd": ["/bin/sh"]}, "rootfs": rootfs, "marker": marker}
    if variant:
        config["variant"] = variant
    if created is not None:
        config["created"] = created
    return json.dumps(config).encode()


def layer(content: bytes) -> bytes:
    return make_tar([("file.txt", content)])


def classic_archive(images: list[tuple[bytes, list[bytes], list[str]]]) -> bytes:
    """A classic `docker save` archive: <config hex>.json, <id>/layer.tar folders, manifest.json."""
    members: list[tuple[str, bytes | None]] = []
    manifest = []
    for config, layers, tags in images:
        members.append((f"{sha(config)}.json", config))
        names = []
        for data in layers:
            members += [(f"{sha(data)}/", None), (f"{sha(data)}/layer.tar", data)]
            names.append(f"{sha(data)}/layer.tar")
        manifest.append({"Config": f"{sha(config)}.json", "RepoTags": tags, "Layers": names})
    members.append(("manifest.json", json.dumps(manifest).encode()))
    return make_tar(members)


def descriptor(media_type: str, data: bytes, annotations: dict | None = None, platform: dict | None = None) -> dict:
    described = {"mediaType": media_type, "digest": "sha256:" + sha(data), "size": len(data)}
    if annotations:
        described["annotations"] = annotations
    if platform:
        described["platform"] = platform
    return described


class OciImage:
    """One image in OCI form: its config, its layer blobs and the manifest naming them."""

    def __init__(self, marker: str, layer_blobs: list[bytes], media_type: str = GZIP_LAYER, architecture: str = "amd64", variant: str | None = None):
        self.config = image_config(marker, architecture, variant, layers=layer_blobs)
        self.layers = layer_blobs
        self.manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, self.config),
            "layers": [descriptor(media_type, blob) for blob in layer_blobs],
        }).encode()
        self.platform = {"os": "linux", "architecture": architecture, **({"variant": variant} if variant else {})}

    @property
    def blobs(self) -> list[bytes]:
        return [self.manifest, self.config] + self.layers

    def descriptor(self, annotations: dict | None = None, platform: bool = False) -> dict:
        return descriptor(OCI_MANIFEST, self.manifest, annotations, self.platform if platform else None)


def oci_archive(index: list[dict], blobs: list[bytes], docker_manifest: list[dict] | None = None) -> bytes:
    """An OCI image layout as a tar; with ``docker_manifest`` it is what Docker 25+ `docker save` writes."""
    unique = {sha(blob): blob for blob in blobs}
    members: list[tuple[str, bytes | None]] = [("blobs/", None), ("blobs/sha256/", None)]
    members += [(f"blobs/sha256/{digest}", blob) for digest, blob in sorted(unique.items())]
    members.append(("index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode()))
    if docker_manifest is not None:
        members.append(("manifest.json", json.dumps(docker_manifest).encode()))
    members.append(("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'))
    return make_tar(members)


def ref_annotation(name: str) -> dict:
    return {"org.opencontainers.image.ref.name": name}


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_stream(source) -> bytes:
    with source.open_stream() as stream:
        return stream.read()


def tar_contents(data: bytes) -> list[tuple[str, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return [(member.name, archive.extractfile(member).read() if member.isfile() else None) for member in archive.getmembers()]
