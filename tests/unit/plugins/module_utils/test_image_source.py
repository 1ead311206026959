# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

"""Unit tests of the image sources: archives built in memory, a Docker API client faked; no Docker daemon."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import sys
import tarfile

import pytest

try:
    import docker
    import requests
except ImportError:
    docker = requests = None

from ansible_collections.arvados.cluster.plugins.module_utils import _image_source as image_source
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import (
    ArchiveError,
    ArchiveSource,
    DaemonUnavailable,
    ImageNotFound,
    ImageSourceError,
    PullError,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
CREATED = "2024-05-06T07:08:09.123456789+02:00"


# --- building archives in memory ---------------------------------------------------------------------------

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


def image_config(marker: str, architecture: str = "amd64", variant: str | None = None, created: str | None = CREATED) -> bytes:
    config = {"architecture": architecture, "os": "linux", "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": []}, "marker": marker}
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
        self.config = image_config(marker, architecture, variant)
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


# --- pure helpers ------------------------------------------------------------------------------------------

def test_parse_docker_manifest_accepts_entries_with_config_and_layers():
    raw = json.dumps([{"Config": "a.json", "RepoTags": None, "Layers": ["x/layer.tar"]}]).encode()
    entries = image_source.parse_docker_manifest(raw, "/tmp/a.tar")
    assert entries[0]["Config"] == "a.json"
    assert image_source.entry_repo_tags(entries[0]) == []


@pytest.mark.parametrize("raw, complaint", [
    (b"{not json", "not valid JSON"),
    (b"[]", "lists no image"),
    (b'{"Config": "a.json"}', "lists no image"),
    (b'[{"Layers": []}]', "lacks Config or Layers"),
    (b'[{"Config": "a.json", "Layers": "x"}]', "lacks Config or Layers"),
])
def test_parse_docker_manifest_rejects_damage_naming_the_archive(raw, complaint):
    with pytest.raises(ArchiveError, match=complaint) as caught:
        image_source.parse_docker_manifest(raw, "/srv/images/bwa.tar")
    assert "/srv/images/bwa.tar" in str(caught.value)


def test_config_digest_is_sha256_of_exact_config_bytes():
    config = image_config("x")
    assert image_source.config_digest(config) == "sha256:" + sha(config)


def test_blob_member_name_only_takes_sha256():
    assert image_source.blob_member_name("sha256:" + "a" * 64, "p") == "blobs/sha256/" + "a" * 64
    with pytest.raises(ArchiveError, match="only sha256"):
        image_source.blob_member_name("sha512:" + "a" * 128, "p")


@pytest.mark.parametrize("name, normalized", [
    ("tiny", "tiny:latest"),
    ("tiny:1.0", "tiny:1.0"),
    ("docker.io/library/tiny:1.0", "tiny:1.0"),
    ("docker.io/team/tiny", "team/tiny:latest"),
    ("registry.example:5000/team/tiny", "registry.example:5000/team/tiny:latest"),
    ("registry.example:5000/team/tiny:2", "registry.example:5000/team/tiny:2"),
])
def test_normalize_repo_tag(name, normalized):
    assert image_source.normalize_repo_tag(name) == normalized


@pytest.mark.parametrize("name, full", [
    ("tiny:1.0", True),
    ("registry.example:5000/team/tiny:1.0", True),
    ("localhost/x_y/z-w:v1.2-rc", True),
    ("1.0", False),
    ("latest", False),
    ("registry.example:5000/team/tiny", False),
    ("tiny@sha256:" + "a" * 64, False),
    ("Tiny:1.0", False),
])
def test_is_full_repo_tag(name, full):
    assert image_source.is_full_repo_tag(name) is full


def test_descriptor_repo_tags_prefers_a_full_oci_ref_name_then_the_containerd_name():
    assert image_source.descriptor_repo_tags({"annotations": ref_annotation("team/tiny:1.0")}) == ["team/tiny:1.0"]
    containerd = {"annotations": {"org.opencontainers.image.ref.name": "1.0", "io.containerd.image.name": "docker.io/team/tiny:1.0"}}
    assert image_source.descriptor_repo_tags(containerd) == ["docker.io/team/tiny:1.0"]
    assert image_source.descriptor_repo_tags({"annotations": ref_annotation("1.0")}) == []
    assert image_source.descriptor_repo_tags({}) == []


def test_parse_platform_and_match():
    assert image_source.parse_platform("linux/x86_64") == ("linux", "amd64", None)
    assert image_source.parse_platform("linux/arm64/v8") == ("linux", "arm64", "v8")
    assert image_source.platform_matches("linux", "aarch64", "v8", ("linux", "arm64", None))
    assert not image_source.platform_matches("linux", "arm64", "v7", ("linux", "arm64", "v8"))
    with pytest.raises(ImageSourceError, match="os/architecture"):
        image_source.parse_platform("amd64")


def test_select_platform_descriptor_ignores_attestations_and_needs_a_choice():
    amd64 = {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}}
    arm64 = {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    attestation = {"digest": "sha256:c", "platform": {"os": "unknown", "architecture": "unknown"},
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    assert image_source.select_platform_descriptor([amd64, attestation], None, "p") is amd64
    assert image_source.select_platform_descriptor([amd64, arm64, attestation], ("linux", "arm64", None), "p") is arm64
    with pytest.raises(ArchiveError, match=r"several platforms \(linux/amd64, linux/arm64/v8\)"):
        image_source.select_platform_descriptor([amd64, arm64, attestation], None, "p")
    with pytest.raises(ArchiveError, match="no image for linux/s390x"):
        image_source.select_platform_descriptor([amd64, arm64], ("linux", "s390x", None), "p")


@pytest.mark.parametrize("ref, expected", [
    ("tiny", ("tiny", "latest")),
    ("tiny:1.0", ("tiny", "1.0")),
    ("registry.example:5000/team/tiny", ("registry.example:5000/team/tiny", "latest")),
    ("registry.example:5000/team/tiny:2", ("registry.example:5000/team/tiny", "2")),
    ("team/tiny@sha256:" + "b" * 64, ("team/tiny", "sha256:" + "b" * 64)),
])
def test_split_pull_reference(ref, expected):
    assert image_source.split_pull_reference(ref) == expected


def test_tar_size_counts_exactly_what_tar_chunks_writes(tmp_path):
    source = write(tmp_path, "src.tar", make_tar([("a", b"x" * 700), ("b", b"y" * 512)]))
    with tarfile.open(source) as archive:
        members = [(f"blobs/sha256/{name}", archive.getmember(name)) for name in ("a", "b")]
    pieces = image_source.docker_archive_pieces(b'[{"Config": "c"}]', members)
    written = b"".join(image_source.tar_chunks(source, pieces))
    assert len(written) == image_source.tar_size(pieces)
    assert [name for name, _data in tar_contents(written)] == ["manifest.json", "blobs", "blobs/sha256", "blobs/sha256/a", "blobs/sha256/b"]


# --- the chunk reader ---------------------------------------------------------------------------------------

class CountingChunks:
    """A chunk iterator that remembers how far it was read and whether it was closed."""

    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks
        self.served = 0
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self.served == len(self.chunks):
            raise StopIteration
        self.served += 1
        return self.chunks[self.served - 1]

    def close(self):
        self.closed = True


def test_chunk_stream_reads_exact_sizes_across_chunks_and_ends_with_empty_bytes():
    chunks = CountingChunks([b"abc", b"", b"defgh", b"ij"])
    stream = image_source.open_chunk_stream(chunks)
    assert stream.read(4) == b"abcd"
    assert stream.read(100) == b"efghij"
    assert stream.read(1) == b""


def test_chunk_stream_pulls_chunks_only_as_needed():
    chunks = CountingChunks([bytes([n]) * 1000 for n in range(100)])
    stream = image_source.open_chunk_stream(chunks)
    stream.read(1500)
    assert chunks.served <= 3


def test_closing_the_chunk_stream_closes_the_chunks_and_calls_back():
    chunks = CountingChunks([b"abc"])
    closed = []
    stream = image_source.open_chunk_stream(chunks, on_close=lambda: closed.append(True))
    stream.read(1)
    stream.close()
    assert chunks.closed and closed == [True]
    with pytest.raises(ValueError):
        stream.read(1)


# --- archives: docker-archive -------------------------------------------------------------------------------

def test_classic_archive_id_is_the_config_digest_and_streams_unchanged(tmp_path):
    config = image_config("classic")
    data = classic_archive([(config, [layer(b"one"), layer(b"two")], ["team/tiny:1.0"])])
    source = ArchiveSource(write(tmp_path, "classic.tar", data))
    identity = source.identify()
    assert identity.image_id == "sha256:" + sha(config)
    assert identity.created == CREATED
    assert identity.repo_tags == ["team/tiny:1.0"]
    assert identity.size == len(data)
    assert (source.archive_format, source.converted) == ("docker-archive", False)
    assert read_stream(source) == data


def test_config_without_created_gives_empty_created(tmp_path):
    config = image_config("no-time", created=None)
    source = ArchiveSource(write(tmp_path, "a.tar", classic_archive([(config, [layer(b"x")], [])])))
    assert source.identify().created == ""
    assert source.identify().repo_tags == []


def test_docker25_archive_uses_manifest_json_and_streams_unchanged(tmp_path):
    image = OciImage("docker25", [layer(b"uncompressed")], media_type=TAR_LAYER)
    docker_manifest = [{"Config": f"blobs/sha256/{sha(image.config)}", "RepoTags": ["tiny:25"], "Layers": [f"blobs/sha256/{sha(image.layers[0])}"]}]
    data = oci_archive([image.descriptor({"io.containerd.image.name": "docker.io/library/tiny:25", "org.opencontainers.image.ref.name": "25"})],
                       image.blobs, docker_manifest)
    source = ArchiveSource(write(tmp_path, "d25.tar", data))
    assert source.identify() == image_source.ImageIdentity("sha256:" + sha(image.config), CREATED, ["tiny:25"], len(data))
    assert not source.converted
    assert read_stream(source) == data


def two_image_archive() -> tuple[bytes, bytes, bytes, list[bytes]]:
    first, second = image_config("first"), image_config("second")
    second_layers = [layer(b"second-a"), layer(b"second-b")]
    data = classic_archive([(first, [layer(b"first")], ["first:1"]), (second, second_layers, ["team/second:2"])])
    return data, first, second, second_layers


def test_multi_image_archive_needs_a_ref(tmp_path):
    data, _first, _second, _layers = two_image_archive()
    path = write(tmp_path, "two.tar", data)
    with pytest.raises(ArchiveError, match=r"holds 2 images \(first:1, team/second:2\); choose one") as caught:
        ArchiveSource(path).identify()
    assert path in str(caught.value)
    with pytest.raises(ArchiveError, match="no image named other:1"):
        ArchiveSource(path, ref="other:1").identify()


def test_ref_chooses_one_image_and_the_stream_holds_only_that_one(tmp_path):
    data, _first, second, second_layers = two_image_archive()
    source = ArchiveSource(write(tmp_path, "two.tar", data), ref="docker.io/team/second:2")
    identity = source.identify()
    assert identity.image_id == "sha256:" + sha(second)
    assert identity.repo_tags == ["team/second:2"]
    stream = read_stream(source)
    assert len(stream) == identity.size
    contents = dict(tar_contents(stream))
    assert contents[f"{sha(second)}.json"] == second
    assert [contents[f"{sha(blob)}/layer.tar"] for blob in second_layers] == second_layers
    assert json.loads(contents["manifest.json"]) == [{
        "Config": f"{sha(second)}.json", "RepoTags": ["team/second:2"], "Layers": [f"{sha(blob)}/layer.tar" for blob in second_layers]}]
    assert len([name for name, data in contents.items() if data is not None]) == 4
    reread = ArchiveSource(write(tmp_path, "narrowed.tar", stream))
    assert reread.identify().image_id == identity.image_id and not reread.converted


def linked_layer_archive(link: Link, extra: tuple | None = None) -> tuple[bytes, bytes, bytes]:
    """What `docker save` writes for an image whose rootfs repeats a layer: the second is a symlink."""
    config, data = image_config("repeated"), layer(b"repeated")
    manifest = [{"Config": f"{sha(config)}.json", "RepoTags": ["rep:1"], "Layers": ["first/layer.tar", "second/layer.tar"]}]
    members = [(f"{sha(config)}.json", config), ("first/", None), ("first/layer.tar", data), ("second/", None), ("second/layer.tar", link)]
    if extra:
        other = image_config("other")
        members += [(f"{sha(other)}.json", other), ("other/layer.tar", layer(b"other"))]
        manifest.append({"Config": f"{sha(other)}.json", "RepoTags": ["other:1"], "Layers": ["other/layer.tar"]})
    return make_tar(members + [("manifest.json", json.dumps(manifest).encode())]), config, data


@pytest.mark.parametrize("link", [Link("../first/layer.tar"), Link("first/layer.tar", hard=True)])
def test_repeated_layer_stored_as_a_link_is_followed(tmp_path, link):
    data, config, _layer = linked_layer_archive(link)
    source = ArchiveSource(write(tmp_path, "linked.tar", data))
    assert source.identify().image_id == "sha256:" + sha(config)
    assert read_stream(source) == data


def test_narrowing_an_archive_copies_a_linked_layer_as_a_file(tmp_path):
    data, _config, layer_data = linked_layer_archive(Link("../first/layer.tar"), extra=True)
    contents = dict(tar_contents(read_stream(ArchiveSource(write(tmp_path, "linked.tar", data), ref="rep:1"))))
    assert contents["first/layer.tar"] == contents["second/layer.tar"] == layer_data
    assert "other/layer.tar" not in contents


def test_link_to_nowhere_is_incomplete(tmp_path):
    data, _config, _layer = linked_layer_archive(Link("../gone/layer.tar"))
    with pytest.raises(ArchiveError, match="lacks second/layer.tar"):
        ArchiveSource(write(tmp_path, "linked.tar", data)).identify()


def test_archive_lacking_a_listed_layer_is_incomplete(tmp_path):
    config = image_config("x")
    manifest = [{"Config": f"{sha(config)}.json", "RepoTags": [], "Layers": ["missing/layer.tar"]}]
    data = make_tar([(f"{sha(config)}.json", config), ("manifest.json", json.dumps(manifest).encode())])
    with pytest.raises(ArchiveError, match="lacks missing/layer.tar, which its manifest.json lists"):
        ArchiveSource(write(tmp_path, "a.tar", data)).identify()


# --- archives: not archives, damaged archives ---------------------------------------------------------------

def test_not_a_tar_is_an_archive_error_naming_the_path(tmp_path):
    path = write(tmp_path, "notes.txt", b"these are not the bytes you are looking for\n" * 40)
    with pytest.raises(ArchiveError, match="is not a tar archive") as caught:
        ArchiveSource(path).identify()
    assert path in str(caught.value)


def test_empty_file_is_not_a_tar(tmp_path):
    with pytest.raises(ArchiveError, match="is not a tar archive"):
        ArchiveSource(write(tmp_path, "empty.tar", b"")).identify()


def test_missing_file(tmp_path):
    with pytest.raises(ArchiveError, match="no such file"):
        ArchiveSource(str(tmp_path / "absent.tar")).identify()


def test_compressed_archive_says_how_to_decompress(tmp_path):
    data = gzip.compress(classic_archive([(image_config("x"), [layer(b"x")], [])]))
    with pytest.raises(ArchiveError, match=r"gzip-compressed.*gunzip"):
        ArchiveSource(write(tmp_path, "a.tar.gz", data)).identify()


def big_layer_archive() -> bytes:
    return classic_archive([(image_config("x"), [layer(b"z" * 20000)], ["x:1"])])


def test_truncated_inside_a_member_is_an_archive_error(tmp_path):
    data = big_layer_archive()
    cut = data.index(b"z" * 100) + 5000
    with pytest.raises(ArchiveError, match="is truncated"):
        ArchiveSource(write(tmp_path, "cut.tar", data[:cut])).identify()


def test_truncated_between_members_is_an_archive_error(tmp_path):
    data = big_layer_archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        manifest = archive.getmember("manifest.json")
    with pytest.raises(ArchiveError, match="truncated or damaged"):
        ArchiveSource(write(tmp_path, "cut.tar", data[:manifest.offset])).identify()


def test_truncated_inside_a_header_is_an_archive_error(tmp_path):
    data = big_layer_archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        manifest = archive.getmember("manifest.json")
    with pytest.raises(ArchiveError, match="truncated"):
        ArchiveSource(write(tmp_path, "cut.tar", data[:manifest.offset + 300])).identify()


def test_tar_without_manifest_or_index(tmp_path):
    with pytest.raises(ArchiveError, match="neither manifest.json nor index.json"):
        ArchiveSource(write(tmp_path, "a.tar", make_tar([("hello.txt", b"hi")]))).identify()


# --- archives: pure OCI, converted on the fly ---------------------------------------------------------------

def test_oci_archive_converts_to_a_docker_archive_with_identical_config_and_layers(tmp_path):
    image = OciImage("oci", [gzip.compress(layer(b"a" * 3000), mtime=0), gzip.compress(layer(b"b"), mtime=0)])
    data = oci_archive([image.descriptor(ref_annotation("registry.example:5000/team/tiny:1.0"))], image.blobs)
    source = ArchiveSource(write(tmp_path, "oci.tar", data))
    identity = source.identify()
    assert identity.image_id == "sha256:" + sha(image.config)
    assert identity.repo_tags == ["registry.example:5000/team/tiny:1.0"]
    assert (source.archive_format, source.converted) == ("oci-archive", True)
    stream = read_stream(source)
    assert len(stream) == identity.size
    config_name = f"blobs/sha256/{sha(image.config)}"
    layer_names = [f"blobs/sha256/{sha(blob)}" for blob in image.layers]
    assert tar_contents(stream) == [
        ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": ["registry.example:5000/team/tiny:1.0"], "Layers": layer_names}],
                                     separators=(",", ":")).encode()),
        ("blobs", None),
        ("blobs/sha256", None),
        (config_name, image.config),
        (layer_names[0], image.layers[0]),
        (layer_names[1], image.layers[1]),
    ]
    assert read_stream(source) == stream


def test_converted_oci_archive_reads_the_same_in_small_pieces(tmp_path):
    image = OciImage("pieces", [gzip.compress(layer(bytes(range(256)) * 40), mtime=0)])
    source = ArchiveSource(write(tmp_path, "oci.tar", oci_archive([image.descriptor()], image.blobs)))
    with source.open_stream() as stream:
        pieces = iter(lambda: stream.read(1000), b"")
        assert b"".join(pieces) == read_stream(source)


def test_converted_oci_archive_is_identified_again_as_the_same_image(tmp_path):
    image = OciImage("again", [gzip.compress(layer(b"again"), mtime=0)])
    source = ArchiveSource(write(tmp_path, "oci.tar", oci_archive([image.descriptor(ref_annotation("again:1"))], image.blobs)))
    converted = ArchiveSource(write(tmp_path, "converted.tar", read_stream(source)))
    assert converted.identify().image_id == source.identify().image_id
    assert converted.identify().repo_tags == ["again:1"]
    assert not converted.converted


def test_oci_bare_tag_annotation_gives_no_repo_tags(tmp_path):
    image = OciImage("bare", [layer(b"bare")], media_type=TAR_LAYER)
    source = ArchiveSource(write(tmp_path, "oci.tar", oci_archive([image.descriptor(ref_annotation("1.0"))], image.blobs)))
    assert source.identify().repo_tags == []
    assert json.loads(dict(tar_contents(read_stream(source)))["manifest.json"])[0]["RepoTags"] is None


def test_repeated_layer_is_written_once_and_listed_twice(tmp_path):
    same = gzip.compress(layer(b"same"), mtime=0)
    image = OciImage("twice", [same, same])
    stream = read_stream(ArchiveSource(write(tmp_path, "oci.tar", oci_archive([image.descriptor()], image.blobs))))
    names = [name for name, _data in tar_contents(stream)]
    assert names.count(f"blobs/sha256/{sha(same)}") == 1
    assert json.loads(dict(tar_contents(stream))["manifest.json"])[0]["Layers"] == [f"blobs/sha256/{sha(same)}"] * 2


def test_zstd_layers_are_refused_with_the_fix(tmp_path):
    image = OciImage("zstd", [b"\x28\xb5\x2f\xfd-not-really"], media_type=TAR_LAYER + "+zstd")
    with pytest.raises(ArchiveError, match=r"zstd-compressed.*--dest-compress-format gzip"):
        ArchiveSource(write(tmp_path, "oci.tar", oci_archive([image.descriptor()], image.blobs))).identify()


def test_oci_config_not_matching_its_digest_is_damage(tmp_path):
    image = OciImage("damaged", [layer(b"x")], media_type=TAR_LAYER)
    blobs = [image.manifest, image.config.replace(b"damaged", b"DAMAGED")] + image.layers
    index = [image.descriptor()]
    data = make_tar([(f"blobs/sha256/{sha(image.manifest)}", image.manifest), (f"blobs/sha256/{sha(image.config)}", blobs[1]),
                     (f"blobs/sha256/{sha(image.layers[0])}", image.layers[0]), ("index.json", json.dumps({"manifests": index}).encode())])
    with pytest.raises(ArchiveError, match="does not match its digest"):
        ArchiveSource(write(tmp_path, "oci.tar", data)).identify()


def test_oci_layer_blob_missing_is_incomplete(tmp_path):
    image = OciImage("partial", [layer(b"x")], media_type=TAR_LAYER)
    data = oci_archive([image.descriptor()], [image.manifest, image.config])
    with pytest.raises(ArchiveError, match="lacks blobs/sha256/"):
        ArchiveSource(write(tmp_path, "oci.tar", data)).identify()


def test_oci_index_with_two_images_needs_a_ref(tmp_path):
    one, two = OciImage("one", [layer(b"1")], TAR_LAYER), OciImage("two", [layer(b"2")], TAR_LAYER)
    data = oci_archive([one.descriptor(ref_annotation("one:1")), two.descriptor(ref_annotation("team/two:2"))], one.blobs + two.blobs)
    path = write(tmp_path, "two.tar", data)
    with pytest.raises(ArchiveError, match=r"holds 2 images \(one:1, team/two:2\)"):
        ArchiveSource(path).identify()
    assert ArchiveSource(path, ref="team/two:2").identify().image_id == "sha256:" + sha(two.config)


def multi_platform_archive() -> tuple[bytes, OciImage, OciImage]:
    amd64 = OciImage("amd64", [layer(b"amd64")], TAR_LAYER)
    arm64 = OciImage("arm64", [layer(b"arm64")], TAR_LAYER, architecture="arm64", variant="v8")
    attestation = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"{}"), "layers": []}).encode()
    platform_index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        amd64.descriptor(platform=True),
        arm64.descriptor(platform=True),
        descriptor(OCI_MANIFEST, attestation, {"vnd.docker.reference.type": "attestation-manifest"}, {"os": "unknown", "architecture": "unknown"}),
    ]}).encode()
    data = oci_archive([descriptor(OCI_INDEX, platform_index, ref_annotation("multi:1"))], amd64.blobs + arm64.blobs + [platform_index, attestation, b"{}"])
    return data, amd64, arm64


def test_multi_platform_oci_archive_needs_a_platform(tmp_path):
    data, _amd64, _arm64 = multi_platform_archive()
    with pytest.raises(ArchiveError, match=r"several platforms \(linux/amd64, linux/arm64/v8\); choose one with the platform option"):
        ArchiveSource(write(tmp_path, "multi.tar", data)).identify()


def test_platform_chooses_from_a_multi_platform_oci_archive(tmp_path):
    data, _amd64, arm64 = multi_platform_archive()
    source = ArchiveSource(write(tmp_path, "multi.tar", data), platform="linux/aarch64")
    assert source.identify().image_id == "sha256:" + sha(arm64.config)
    assert source.identify().repo_tags == ["multi:1"]
    contents = dict(tar_contents(read_stream(source)))
    assert contents[f"blobs/sha256/{sha(arm64.layers[0])}"] == arm64.layers[0]


# --- the Docker daemon, faked --------------------------------------------------------------------------------

needs_docker_sdk = pytest.mark.skipif(docker is None, reason="the Docker SDK is needed to fake its errors")


class FakeResponse:
    """A streamed HTTP response as requests gives it, counting what was read."""

    def __init__(self, status_code: int = 200, body: bytes = b"", chunk_size: int = 4096):
        self.status_code = status_code
        self.body = body
        self.text = body.decode(errors="replace") if status_code >= 400 else ""
        self.chunk_size = chunk_size
        self.bytes_served = 0
        self.closed = False

    def iter_content(self, _chunk_size):
        for start in range(0, len(self.body), self.chunk_size):
            self.bytes_served = min(len(self.body), start + self.chunk_size)
            yield self.body[start:start + self.chunk_size]

    def close(self):
        self.closed = True


class FakeDockerApi:
    """The parts of ``docker.APIClient`` the sources use, with images kept in dicts."""

    base_url = "http+docker://localhost"
    api_version = "1.41"
    timeout = 60

    def __init__(self, images: dict | None = None, saves: dict | None = None, driver_status: list | None = None, pull_messages: list | None = None):
        self.images = images or {}
        self.saves = saves or {}
        self.driver_status = driver_status or []
        self.pull_messages = pull_messages
        self.pulls: list[tuple] = []
        self.gets: list[dict] = []
        self.responses: list[FakeResponse] = []

    def inspect_image(self, ref):
        if ref not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {ref}", explanation=f"No such image: {ref}")
        return self.images[ref]

    def info(self):
        return {"DriverStatus": self.driver_status}

    def _saved_by_id(self, image_id):
        """The sources save by image id, as arv-keepdocker does: find the save registered under a name of it."""
        names = [name for name, inspect in self.images.items() if inspect.get("Id") == image_id]
        return self.saves.get(names[0]) if names else None

    def get(self, url, **kwargs):
        self.gets.append(dict(kwargs, url=url))
        ref = url.split("/images/", 1)[1].rsplit("/get", 1)[0]
        body = self.saves.get(ref, self._saved_by_id(ref))
        response = FakeResponse(200, body) if body is not None else FakeResponse(404, b'{"message": "reference does not exist"}')
        self.responses.append(response)
        return response

    def pull(self, repository, tag=None, stream=False, decode=False, platform=None):
        self.pulls.append((repository, tag, platform))
        assert stream and decode
        yield from (self.pull_messages or [{"status": "Downloaded newer image"}])


def classic_inspect(config: bytes, tags: list[str]) -> dict:
    return {"Id": "sha256:" + sha(config), "RepoTags": tags, "Created": "2024-05-06T05:08:09.123456789Z", "Os": "linux", "Architecture": "amd64"}


@needs_docker_sdk
def test_local_image_on_the_classic_store_is_identified_by_inspect_alone():
    config = image_config("local")
    api = FakeDockerApi(images={"tiny:1.0": classic_inspect(config, ["tiny:1.0"])})
    identity = image_source.LocalDaemonSource(api, "tiny:1.0").identify()
    assert identity == image_source.ImageIdentity("sha256:" + sha(config), "2024-05-06T05:08:09.123456789Z", ["tiny:1.0"], None)
    assert api.gets == []


@needs_docker_sdk
def test_docker_client_is_accepted_as_well_as_its_api():
    config = image_config("client")
    api = FakeDockerApi(images={"tiny:1.0": classic_inspect(config, ["tiny:1.0"])})
    client = type("FakeDockerClient", (), {"api": api})()
    assert image_source.LocalDaemonSource(client, "tiny:1.0").identify().image_id == "sha256:" + sha(config)


@needs_docker_sdk
def test_zero_created_time_means_none():
    inspect = dict(classic_inspect(image_config("z"), []), Created="0001-01-01T00:00:00Z")
    assert image_source.LocalDaemonSource(FakeDockerApi(images={"z": inspect}), "z").identify().created == ""


@needs_docker_sdk
def test_local_stream_is_the_save_response_read_lazily_and_closed():
    body = bytes(range(256)) * 1000
    api = FakeDockerApi(images={"team/tiny:1.0": {"Id": "sha256:" + "1" * 64}}, saves={"team/tiny:1.0": body})
    stream = image_source.LocalDaemonSource(api, "team/tiny:1.0").open_stream()
    assert stream.read(10) == body[:10]
    assert api.responses[0].bytes_served < len(body)
    assert stream.read() == body[10:]
    stream.close()
    assert api.responses[0].closed
    assert api.gets[0]["stream"] is True
    assert api.gets[0]["timeout"] == (60, None)
    # Saved by id, as arv-keepdocker saves it, so both upload the same bytes.
    assert api.gets[0]["url"].endswith("/images/sha256:" + "1" * 64 + "/get")


def containerd_save(image: OciImage, tags: list[str], big_layer_last: bool = True) -> bytes:
    """What Docker 29 on the containerd store saves: the OCI layout plus manifest.json, blobs in the order given."""
    members: list[tuple[str, bytes | None]] = [("blobs/", None), ("blobs/sha256/", None)]
    members += [(f"blobs/sha256/{sha(blob)}", blob) for blob in image.blobs]
    members.append(("index.json", json.dumps({"manifests": [image.descriptor()]}).encode()))
    members.append(("manifest.json", json.dumps([{"Config": f"blobs/sha256/{sha(image.config)}", "RepoTags": tags,
                                                  "Layers": [f"blobs/sha256/{sha(blob)}" for blob in image.layers]}]).encode()))
    if not big_layer_last:
        members = members[:2] + members[4:] + members[2:4]
    return make_tar(members)


def containerd_inspect(image: OciImage, tags: list[str], descriptor_shown: bool = True) -> dict:
    inspect = {"Id": "sha256:" + sha(image.manifest), "RepoTags": tags, "Created": CREATED, "Os": "linux", "Architecture": "amd64"}
    if descriptor_shown:
        inspect["Descriptor"] = image.descriptor()
    return inspect


@needs_docker_sdk
def test_containerd_store_id_is_the_config_digest_read_from_the_save_stream_stopping_early():
    image = OciImage("c8d", [bytes(range(256)) * 4096])
    api = FakeDockerApi(images={"tiny:29": containerd_inspect(image, ["tiny:29"])}, saves={"tiny:29": containerd_save(image, ["tiny:29"])})
    identity = image_source.LocalDaemonSource(api, "tiny:29").identify()
    assert identity.image_id == "sha256:" + sha(image.config)
    assert identity.image_id != api.images["tiny:29"]["Id"]
    assert api.responses[0].closed
    assert api.responses[0].bytes_served < 100 * 1024


@needs_docker_sdk
def test_containerd_store_is_recognised_by_driver_status_too():
    image = OciImage("c8d-info", [layer(b"x")])
    api = FakeDockerApi(images={"tiny:28": containerd_inspect(image, ["tiny:28"], descriptor_shown=False)},
                        saves={"tiny:28": containerd_save(image, ["tiny:28"], big_layer_last=False)},
                        driver_status=[["driver-type", "io.containerd.snapshotter.v1"]])
    assert image_source.LocalDaemonSource(api, "tiny:28").identify().image_id == "sha256:" + sha(image.config)


@needs_docker_sdk
def test_containerd_multi_platform_image_follows_the_index_for_the_daemon_platform():
    amd64 = OciImage("c8d-amd64", [layer(b"amd64")])
    arm64 = OciImage("c8d-arm64", [layer(b"arm64")], architecture="arm64")
    index = json.dumps({"mediaType": OCI_INDEX, "manifests": [amd64.descriptor(platform=True), arm64.descriptor(platform=True)]}).encode()
    members: list[tuple[str, bytes | None]] = [(f"blobs/sha256/{sha(blob)}", blob) for blob in [index] + arm64.blobs + amd64.blobs]
    members.append(("index.json", json.dumps({"manifests": [descriptor(OCI_INDEX, index)]}).encode()))
    inspect = {"Id": "sha256:" + sha(index), "Descriptor": descriptor(OCI_INDEX, index), "RepoTags": ["multi:1"], "Os": "linux", "Architecture": "arm64"}
    api = FakeDockerApi(images={"multi:1": inspect}, saves={"multi:1": make_tar(members)})
    assert image_source.LocalDaemonSource(api, "multi:1").identify().image_id == "sha256:" + sha(arm64.config)
    chosen = image_source.LocalDaemonSource(api, "multi:1", platform="linux/amd64")
    assert chosen.identify().image_id == "sha256:" + sha(amd64.config)


@needs_docker_sdk
def test_image_absent_from_the_daemon_is_image_not_found():
    with pytest.raises(ImageNotFound, match="image team/absent:1 is not in the Docker daemon"):
        image_source.LocalDaemonSource(FakeDockerApi(), "team/absent:1").identify()
    with pytest.raises(ImageNotFound, match="team/absent:1"):
        image_source.LocalDaemonSource(FakeDockerApi(), "team/absent:1").open_stream()


class UnreachableApi(FakeDockerApi):
    def inspect_image(self, ref):
        raise requests.exceptions.ConnectionError("Connection aborted: No such file or directory")


@needs_docker_sdk
def test_unreachable_daemon_is_daemon_unavailable():
    with pytest.raises(DaemonUnavailable, match="cannot reach the Docker daemon to inspect tiny:1.0"):
        image_source.LocalDaemonSource(UnreachableApi(), "tiny:1.0").identify()


class RefusingApi(FakeDockerApi):
    def inspect_image(self, ref):
        raise docker.errors.APIError("500 Server Error", explanation="layer store is broken")


@needs_docker_sdk
def test_other_daemon_errors_are_neither_unavailable_nor_not_found():
    with pytest.raises(ImageSourceError, match="layer store is broken") as caught:
        image_source.LocalDaemonSource(RefusingApi(), "tiny:1.0").identify()
    assert not isinstance(caught.value, (DaemonUnavailable, ImageNotFound))


@needs_docker_sdk
def test_pull_missing_does_not_pull_what_the_daemon_has():
    config = image_config("present")
    api = FakeDockerApi(images={"127.0.0.1:5000/tiny:1": classic_inspect(config, ["127.0.0.1:5000/tiny:1"])})
    source = image_source.PullSource(api, "127.0.0.1:5000/tiny:1", policy="missing")
    assert source.identify().image_id == "sha256:" + sha(config)
    assert (source.pulled, api.pulls) == (False, [])


class PullingApi(FakeDockerApi):
    """Pulling makes the image appear, as a registry pull would."""

    def __init__(self, ref: str, inspect: dict, **kwargs):
        super().__init__(**kwargs)
        self.ref, self.pulled_inspect = ref, inspect

    def pull(self, repository, tag=None, stream=False, decode=False, platform=None):
        yield from super().pull(repository, tag, stream, decode, platform)
        self.images[self.ref] = self.pulled_inspect


@needs_docker_sdk
def test_pull_missing_pulls_what_the_daemon_lacks():
    config = image_config("pulled")
    api = PullingApi("127.0.0.1:5000/team/tiny:1", classic_inspect(config, ["127.0.0.1:5000/team/tiny:1"]))
    source = image_source.PullSource(api, "127.0.0.1:5000/team/tiny:1", policy="missing")
    assert source.identify().image_id == "sha256:" + sha(config)
    assert source.pulled
    assert api.pulls == [("127.0.0.1:5000/team/tiny", "1", None)]
    source.identify()
    assert len(api.pulls) == 1


@needs_docker_sdk
def test_pull_always_pulls_even_what_the_daemon_has():
    config = image_config("always")
    api = PullingApi("tiny:1", classic_inspect(config, ["tiny:1"]), images={"tiny:1": classic_inspect(config, ["tiny:1"])})
    source = image_source.PullSource(api, "tiny:1", policy="always", platform="linux/amd64")
    source.identify()
    assert source.pulled and api.pulls == [("tiny", "1", "linux/amd64")]


@needs_docker_sdk
def test_pull_missing_pulls_when_the_local_image_is_of_another_platform():
    config = image_config("arm")
    api = PullingApi("tiny:1", classic_inspect(config, ["tiny:1"]), images={"tiny:1": dict(classic_inspect(config, ["tiny:1"]), Architecture="arm64")})
    source = image_source.PullSource(api, "tiny:1", policy="missing", platform="linux/amd64")
    source.identify()
    assert source.pulled


@needs_docker_sdk
def test_pull_error_in_the_progress_stream_is_a_pull_error():
    api = FakeDockerApi(pull_messages=[{"status": "Pulling"}, {"error": "manifest for 127.0.0.1:5000/tiny:9 not found"}])
    with pytest.raises(PullError, match=r"pull 127.0.0.1:5000/tiny:9 failed: manifest for .* not found; check the name"):
        image_source.PullSource(api, "127.0.0.1:5000/tiny:9", policy="always").identify()


class RefusedPullApi(FakeDockerApi):
    def pull(self, repository, tag=None, stream=False, decode=False, platform=None):
        raise docker.errors.APIError("500 Server Error", explanation="Get https://registry.example/v2/: dial tcp: connection refused")


@needs_docker_sdk
def test_pull_refused_by_the_daemon_is_a_pull_error_with_the_login_hint():
    with pytest.raises(PullError, match=r"pull registry.example/tiny:1 failed: Get .*connection refused; .*docker login"):
        image_source.PullSource(RefusedPullApi(), "registry.example/tiny:1", policy="always").identify()


@needs_docker_sdk
def test_local_image_of_another_platform_is_not_found_for_the_asked_platform():
    inspect = dict(classic_inspect(image_config("arm"), ["tiny:1"]), Architecture="arm64", Variant="v8")
    with pytest.raises(ImageNotFound, match="tiny:1 in the Docker daemon is for linux/arm64/v8, not linux/amd64"):
        image_source.LocalDaemonSource(FakeDockerApi(images={"tiny:1": inspect}), "tiny:1", platform="linux/amd64").identify()
    assert image_source.LocalDaemonSource(FakeDockerApi(images={"tiny:1": inspect}), "tiny:1", platform="linux/arm64").identify()


@needs_docker_sdk
def test_an_image_id_cannot_be_pulled():
    with pytest.raises(PullError, match="an image id names no registry"):
        image_source.PullSource(FakeDockerApi(), "sha256:" + "c" * 64, policy="always").identify()


@needs_docker_sdk
def test_pull_policy_is_checked():
    with pytest.raises(ImageSourceError, match="pull policy 'sometimes'"):
        image_source.PullSource(FakeDockerApi(), "tiny:1", policy="sometimes")


# --- without the Docker SDK ----------------------------------------------------------------------------------

def test_module_imports_without_the_docker_sdk_and_archives_still_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    spec = importlib.util.spec_from_file_location("image_source_without_docker", image_source.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.HAS_DOCKER is False and "docker" in module.DOCKER_IMPORT_ERROR
    config = image_config("no-sdk")
    path = write(tmp_path, "a.tar", classic_archive([(config, [layer(b"x")], [])]))
    assert module.ArchiveSource(path).identify().image_id == "sha256:" + sha(config)
    with pytest.raises(module.ImageSourceError, match="Docker SDK for Python is required"):
        module.LocalDaemonSource(object(), "tiny:1")
