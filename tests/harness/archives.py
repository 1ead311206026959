"""Image archives in the three layouts the collection must read, made from one classic `docker save`.

1. classic docker-archive: what `docker save` of the 20.10 engine here writes (ImageFactory.save);
2. Docker 25+ layout: an OCI image layout (oci-layout, index.json, blobs/sha256/...) that also carries
   manifest.json and repositories, as `docker save` of Docker 25 and later writes; docker25_archive
   rewrites a classic archive into it, since no such engine runs here;
3. pure OCI archive: `skopeo copy` to oci-archive (no manifest.json, no repositories).

This engine (20.10, classic graph driver) reports the config digest as the image Id; newer engines with the
containerd image store report a manifest digest instead (arvados/arvados#488), so tests compare ids against
the config digest read from a saved archive (config_digest).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import subprocess
import tarfile
import tempfile

SKOPEO = "/usr/bin/skopeo"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}'
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20


@dataclasses.dataclass
class _Blob:
    """One file of the output: small ones carry their bytes, layers point at a member of the source."""

    digest: str
    size: int
    data: bytes | None = None
    source_member: str | None = None


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _json_bytes(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} is not a file in {tar.name}")
    with member:
        return member.read()


def qualified_name(familiar: str) -> str:
    """'busybox' -> 'docker.io/library/busybox'; names with a registry host stay as they are."""
    first, sep, _rest = familiar.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return familiar
    return f"docker.io/{familiar}" if sep else f"docker.io/library/{familiar}"


def _split_tag(repo_tag: str) -> tuple[str, str]:
    name, sep, tag = repo_tag.rpartition(":")
    if not sep or "/" in tag:
        return repo_tag, "latest"
    return name, tag


class _Docker25Layout:
    """The blobs, manifest.json, repositories and index.json of one classic archive, in Docker 25's layout."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.blobs: dict[str, _Blob] = {}
        self.manifest: list[dict] = []
        self.repositories: dict[str, dict[str, str]] = {}
        self.index_entries: list[dict] = []
        for item in json.loads(_read(tar, "manifest.json")):
            self._add_image(item)

    def _add_blob(self, blob: _Blob) -> str:
        self.blobs.setdefault(blob.digest, blob)
        return f"blobs/sha256/{blob.digest.split(':', 1)[1]}"

    def _add_image(self, item: dict) -> None:
        config_bytes = _read(self.tar, item["Config"])
        config = json.loads(config_bytes)
        config_path = self._add_blob(_Blob(_sha256(config_bytes), len(config_bytes), data=config_bytes))
        layer_descriptors = self._add_layers(item["Layers"], config["rootfs"]["diff_ids"])
        platform = {"architecture": config.get("architecture", "amd64"), "os": config.get("os", "linux")}
        oci_manifest = _json_bytes({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha256(config_bytes), "size": len(config_bytes), "platform": platform},
            "layers": layer_descriptors,
        })
        manifest_blob = _Blob(_sha256(oci_manifest), len(oci_manifest), data=oci_manifest)
        self._add_blob(manifest_blob)
        repo_tags = item.get("RepoTags") or []
        for repo_tag in repo_tags:
            self._add_tag(repo_tag, manifest_blob, platform, layer_descriptors[-1]["digest"])
        self.manifest.append({"Config": config_path, "RepoTags": repo_tags, "Layers": [f"blobs/sha256/{d['digest'][7:]}" for d in layer_descriptors]})

    def _add_layers(self, layer_paths: list[str], diff_ids: list[str]) -> list[dict]:
        descriptors = []
        for layer_path, diff_id in zip(layer_paths, diff_ids):
            # Docker 25 names the uncompressed layer by its diff id and keeps the legacy v1 json as a blob too.
            v1_json = _read(self.tar, f"{layer_path.rsplit('/', 1)[0]}/json")
            self._add_blob(_Blob(_sha256(v1_json), len(v1_json), data=v1_json))
            size = self.tar.getmember(layer_path).size
            self._add_blob(_Blob(diff_id, size, source_member=layer_path))
            descriptors.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": size})
        return descriptors

    def _add_tag(self, repo_tag: str, manifest_blob: _Blob, platform: dict, top_layer: str) -> None:
        name, tag = _split_tag(repo_tag)
        self.repositories.setdefault(name, {})[tag] = top_layer.split(":", 1)[1]
        self.index_entries.append({
            "mediaType": OCI_MANIFEST,
            "digest": manifest_blob.digest,
            "size": manifest_blob.size,
            "annotations": {ANNOTATION_IMAGE_NAME: f"{qualified_name(name)}:{tag}", ANNOTATION_REF_NAME: tag},
            "platform": platform,
        })

    def top_level_files(self) -> dict[str, bytes]:
        files = {
            "index.json": _json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.index_entries}),
            "manifest.json": _json_bytes(self.manifest) + b"\n",
            "oci-layout": OCI_LAYOUT.encode(),
        }
        if self.repositories:
            files["repositories"] = _json_bytes(self.repositories) + b"\n"
        return files


def _add_directory(out: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    out.addfile(info)


def _add_bytes(out: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    out.addfile(info, io.BytesIO(data))


def _add_member_copy(out: tarfile.TarFile, name: str, src: tarfile.TarFile, member_name: str) -> None:
    member = src.extractfile(member_name)
    if member is None:
        raise ValueError(f"{member_name} is not a file in {src.name}")
    info = tarfile.TarInfo(name)
    info.size = src.getmember(member_name).size
    info.mode = 0o644
    with member:
        out.addfile(info, member)


def docker25_archive(src_archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Rewrites a classic `docker save` archive as Docker 25+ writes it; the config bytes stay identical.

    Members come in the order Docker's sorted directory walk gives: blobs/, blobs/sha256/, the blobs,
    then index.json, manifest.json, oci-layout, repositories. Layers are copied, not rehashed: the
    config's diff ids name them, as Docker does.
    """
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src_archive, "r:") as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        layout = _Docker25Layout(src)
        _add_directory(out, "blobs")
        _add_directory(out, "blobs/sha256")
        for digest in sorted(layout.blobs):
            blob = layout.blobs[digest]
            name = f"blobs/sha256/{digest.split(':', 1)[1]}"
            if blob.data is not None:
                _add_bytes(out, name, blob.data)
            else:
                _add_member_copy(out, name, src, str(blob.source_member))
        for name, data in sorted(layout.top_level_files().items()):
            _add_bytes(out, name, data)
    return dest


def oci_archive(src_archive: pathlib.Path, dest: pathlib.Path, ref: str, preserve_config: bool = True) -> pathlib.Path:
    """A pure OCI archive (oci-layout, index.json, blobs only) written by skopeo from a classic archive.

    `ref` becomes the index's org.opencontainers.image.ref.name annotation (a tag such as 'latest').
    skopeo's docker-archive to OCI conversion rewrites the config in OCI form, which changes its digest;
    preserve_config=True keeps the config bytes (and so the image id) by copying from the Docker 25 layout
    instead, as skopeo does from a Docker 25+ save. preserve_config=False gives the plain conversion.
    """
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        if preserve_config:
            source = f"oci-archive:{docker25_archive(src_archive, pathlib.Path(tmp) / 'docker25.tar')}"
            options = ["--preserve-digests"]
        else:
            source = f"docker-archive:{src_archive}"
            options = []
        subprocess.run(
            [SKOPEO, "--insecure-policy", "copy", "--quiet", *options, source, f"oci-archive:{dest}:{ref}"],
            check=True, capture_output=True, text=True, env={**os.environ, "TMPDIR": tmp},
        )
    return dest


def member_names(archive: pathlib.Path) -> list[str]:
    """The archive's member names in order, without a leading './' or trailing '/'."""
    with tarfile.open(archive, "r:") as tar:
        return [member.name.removeprefix("./").rstrip("/") for member in tar.getmembers()]


def _oci_config_digest(tar: tarfile.TarFile, digest: str) -> str:
    """Follows index -> (nested index ->) manifest -> config in an OCI layout."""
    document = json.loads(_read(tar, f"blobs/sha256/{digest.split(':', 1)[1]}"))
    if document.get("mediaType") == OCI_INDEX or "manifests" in document:
        return _oci_config_digest(tar, document["manifests"][0]["digest"])
    return document["config"]["digest"]


def config_digest(archive: pathlib.Path) -> str:
    """The sha256 of the first image's config bytes, in any of the three layouts; checked against its name."""
    with tarfile.open(archive, "r:") as tar:
        names = {member.name.removeprefix("./") for member in tar.getmembers()}
        if "manifest.json" in names:
            config_path = json.loads(_read(tar, "manifest.json"))[0]["Config"]
        else:
            index = json.loads(_read(tar, "index.json"))
            digest = _oci_config_digest(tar, index["manifests"][0]["digest"])
            config_path = f"blobs/sha256/{digest.split(':', 1)[1]}"
        actual = _sha256(_read(tar, config_path))
    named = pathlib.PurePosixPath(config_path).name.removesuffix(".json")
    if actual.split(":", 1)[1] != named:
        raise ValueError(f"{archive}: config {config_path} has digest {actual}")
    return actual


# ---- hostile archives: each is a genuine `docker save` archive changed in one way `docker load` refuses ----

def _rewrite(src_archive: pathlib.Path, dest: pathlib.Path, change) -> pathlib.Path:
    """Copies src_archive to dest member by member; change(info, data) returns the (info, data) pairs to write instead."""
    dest = pathlib.Path(dest)
    with tarfile.open(src_archive, "r:") as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for info in src.getmembers():
            reader = src.extractfile(info) if info.isfile() else None
            data = reader.read() if reader is not None else None
            for new_info, new_data in change(info, data):
                if new_data is not None:
                    new_info.size = len(new_data)
                out.addfile(new_info, io.BytesIO(new_data) if new_data is not None else None)
    return dest


def _file_info(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info


def _other_layer() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as layer:
        payload = b"#!/bin/sh\necho this is not the image you asked for\n"
        layer.addfile(_file_info("bin/sh", payload), io.BytesIO(payload))
    return out.getvalue()


def tampered_archive(src_archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Every layer.tar replaced by another tar; config, manifest and so the image id stay as they were."""
    return _rewrite(src_archive, dest, lambda info, data: [(info, _other_layer() if info.name.endswith("layer.tar") else data)])


def climbing_archive(src_archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Every member named `../<name>`, so that extracting it writes outside the folder it is extracted in."""
    def climb(info, data):
        info.name = "../" + info.name
        return [(info, data)]
    return _rewrite(src_archive, dest, climb)


def escaping_extras_archive(src_archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """The genuine archive plus members `../../../../x` and `/x`, which the manifest does not name."""
    def add(info, data):
        if info.name != "manifest.json":
            return [(info, data)]
        evil = b"written outside the archive\n"
        return [(info, data), (_file_info("../../../../x", evil), evil), (_file_info("/x", evil), evil)]
    return _rewrite(src_archive, dest, add)


def missing_layer_archive(src_archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """The genuine archive without its layers' layer.tar members."""
    return _rewrite(src_archive, dest, lambda info, data: [] if info.name.endswith("layer.tar") else [(info, data)])


def wrong_blob_archive(src_oci_archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """An OCI archive whose layer blob holds other bytes than its digest (its name) says."""
    with tarfile.open(src_oci_archive, "r:") as tar:
        index = json.loads(_read(tar, "index.json"))
        manifest = json.loads(_read(tar, f"blobs/sha256/{index['manifests'][0]['digest'].split(':', 1)[1]}"))
    layer_blob = f"blobs/sha256/{manifest['layers'][0]['digest'].split(':', 1)[1]}"
    return _rewrite(src_oci_archive, dest, lambda info, data: [(info, _other_layer() if info.name == layer_blob else data)])
