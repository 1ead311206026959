"""The image sources against a real dockerd (20.10) and registry: ids, byte streams, pulls, archives, memory."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import typing as t

import pytest

from harness import archives
from helpers import importable_collection, sha256_file

MODULE_UTILS = "ansible_collections.arvados.cluster.plugins.module_utils"
MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Sources:
    """The collection's image sources and their errors, imported from a copy of this checkout staged in `stage_root`."""

    stage_root: pathlib.Path
    ArchiveSource: type
    LocalDaemonSource: type
    PullSource: type
    ImageNotFound: type
    PullError: type


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> t.Iterator[Sources]:
    with importable_collection(tmp_path_factory.mktemp("staged")) as stage_root:
        archive_source = importlib.import_module(f"{MODULE_UTILS}._archive_source")
        daemon_source = importlib.import_module(f"{MODULE_UTILS}._daemon_source")
        errors = importlib.import_module(f"{MODULE_UTILS}._errors")
        yield Sources(stage_root, archive_source.ArchiveSource, daemon_source.LocalDaemonSource, daemon_source.PullSource,
                      errors.ImageNotFound, errors.PullError)


@pytest.fixture(scope="module")
def client(dockerd):
    docker_client = dockerd.client()
    yield docker_client
    docker_client.close()


def stream_sha256(source) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    with source.open_stream() as stream:
        for chunk in iter(lambda: stream.read(MIB), b""):
            digest.update(chunk)
            total += len(chunk)
    return digest.hexdigest(), total


def saved_config(archive: pathlib.Path) -> dict:
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        return json.loads(tar.extractfile(manifest[0]["Config"]).read())


def cli_save(dockerd, ref: str, path: pathlib.Path) -> pathlib.Path:
    """What the docker CLI's `docker save` writes, independent of the SDK."""
    dockerd.cli("save", "-o", str(path), ref)
    return path


def load_stream(client, stream) -> list[str]:
    """`docker load` of a stream, chunked straight from the reader into the daemon; returns its messages."""
    messages = []
    for message in client.api.load_image(stream):
        if "error" in message:
            raise AssertionError(f"docker load failed: {message['error']}")
        messages.append(message.get("stream", "").strip())
    return messages


# --- local daemon ---------------------------------------------------------------------------------------------

def test_local_id_is_the_config_digest_of_docker_save(sources, client, dockerd, images, tmp_path):
    built = images.build("imgsrc/local", "1", size=MIB)
    saved = cli_save(dockerd, built.ref, tmp_path / "saved.tar")
    identity = sources.LocalDaemonSource(client, built.ref).identify()
    assert identity.image_id == archives.config_digest(saved) == built.image_id
    assert identity.created == saved_config(saved)["created"]
    assert identity.repo_tags == [built.ref]
    assert identity.size is None


def test_local_stream_is_byte_identical_to_docker_save_of_the_id(sources, client, dockerd, images, tmp_path):
    # arv-keepdocker saves by image id (keepdocker.py, save_image): the same bytes give the same portable data hash.
    built = images.build("imgsrc/stream", "1", size=3 * MIB)
    saved = cli_save(dockerd, built.image_id, tmp_path / "saved.tar")
    digest, size = stream_sha256(sources.LocalDaemonSource(client.api, built.ref))
    assert (digest, size) == (sha256_file(saved), saved.stat().st_size)


def test_image_absent_from_the_daemon_is_image_not_found(sources, client):
    with pytest.raises(sources.ImageNotFound, match="imgsrc/never-built:1"):
        sources.LocalDaemonSource(client, "imgsrc/never-built:1").identify()
    with pytest.raises(sources.ImageNotFound):
        sources.LocalDaemonSource(client, "imgsrc/never-built:1").open_stream()


# --- pull -----------------------------------------------------------------------------------------------------

def test_pull_missing_pulls_only_when_the_daemon_lacks_the_image(sources, client, images, registry):
    built = images.build("imgsrc/pull-missing", "1")
    pushed = images.push(built.ref, registry)
    images.remove(pushed)

    first = sources.PullSource(client, pushed, policy="missing")
    assert first.identify().image_id == built.image_id
    assert first.pulled
    assert pushed in client.api.inspect_image(pushed)["RepoTags"]

    second = sources.PullSource(client, pushed, policy="missing")
    assert second.identify().image_id == built.image_id
    assert not second.pulled


def test_pull_always_pulls_even_when_present(sources, client, images, registry):
    built = images.build("imgsrc/pull-always", "1")
    pushed = images.push(built.ref, registry)
    source = sources.PullSource(client, pushed, policy="always", platform="linux/amd64")
    assert source.identify().image_id == built.image_id
    assert source.pulled


def test_pull_of_a_tag_the_registry_lacks_is_a_pull_error(sources, client, registry):
    ref = f"{registry.address}/imgsrc/pull-absent:9"
    with pytest.raises(sources.PullError, match=f"pull {ref} failed"):
        sources.PullSource(client, ref, policy="missing").identify()


# --- archives -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def archive_image(images, dockerd, tmp_path_factory):
    """One image and its classic `docker save` archive; tests that need its layers gone build their own."""
    built = images.build("imgsrc/archive", "1", size=2 * MIB)
    saved = cli_save(dockerd, built.ref, tmp_path_factory.mktemp("archive") / "classic.tar")
    return built, saved


def test_classic_archive_is_identified_and_streamed_unchanged(sources, archive_image):
    built, saved = archive_image
    source = sources.ArchiveSource(saved)
    identity = source.identify()
    assert identity.image_id == built.image_id
    assert identity.created == saved_config(saved)["created"]
    assert identity.repo_tags == [built.ref]
    assert identity.size == saved.stat().st_size
    assert stream_sha256(source) == (sha256_file(saved), saved.stat().st_size)


def test_docker25_archive_is_identified_and_streamed_unchanged(sources, archive_image, tmp_path):
    built, saved = archive_image
    docker25 = archives.docker25_archive(saved, tmp_path / "docker25.tar")
    source = sources.ArchiveSource(docker25)
    assert source.identify().image_id == built.image_id
    assert (source.archive_format, source.converted) == ("docker-archive", False)
    assert stream_sha256(source) == (sha256_file(docker25), docker25.stat().st_size)


def oci_layer_media_types(oci: pathlib.Path) -> list[str]:
    with tarfile.open(oci) as tar:
        index = json.loads(tar.extractfile("index.json").read())
        manifest = json.loads(tar.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]).read())
    return [layer["mediaType"] for layer in manifest["layers"]]


@pytest.mark.parametrize("preserve_config, layer_media_type", [
    (False, "application/vnd.oci.image.layer.v1.tar+gzip"),
    (True, "application/vnd.oci.image.layer.v1.tar"),
])
def test_pure_oci_archive_converts_to_a_stream_docker_20_10_loads(sources, client, dockerd, images, tmp_path, preserve_config, layer_media_type):
    tag = "gzip" if preserve_config is False else "plain"
    built = images.build("imgsrc/oci-source", tag, size=MIB)
    saved = cli_save(dockerd, built.ref, tmp_path / "classic.tar")
    oci = archives.oci_archive(saved, tmp_path / "oci.tar", f"imgsrc/oci-loaded:{tag}", preserve_config=preserve_config)
    assert oci_layer_media_types(oci) == [layer_media_type]
    # With the source image gone, `docker load` must unpack every layer from the stream, not reuse its own.
    images.remove(built.ref)

    source = sources.ArchiveSource(oci)
    identity = source.identify()
    assert identity.image_id == archives.config_digest(oci)
    assert (identity.image_id == built.image_id) is preserve_config
    assert identity.repo_tags == [f"imgsrc/oci-loaded:{tag}"]
    assert (source.archive_format, source.converted) == ("oci-archive", True)

    with source.open_stream() as stream:
        messages = load_stream(client, stream)
    assert messages == [f"Loaded image: imgsrc/oci-loaded:{tag}"]
    loaded = client.api.inspect_image(f"imgsrc/oci-loaded:{tag}")
    assert loaded["Id"] == identity.image_id
    assert loaded["RootFS"]["Layers"] == saved_config(saved)["rootfs"]["diff_ids"]
    images.remove(f"imgsrc/oci-loaded:{tag}")


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def oci_archive_repeating_a_layer(path: pathlib.Path, ref_name: str) -> pathlib.Path:
    """A pure OCI archive whose rootfs lists one (new, uncompressed) layer twice."""
    layer = tar_bytes([("repeated/" + os.urandom(8).hex(), os.urandom(4096))])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]}}).encode()
    layer_descriptor = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": len(layer)}
    config_descriptor = {"mediaType": archives.OCI_CONFIG, "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": archives.OCI_MANIFEST, "config": config_descriptor,
                           "layers": [layer_descriptor, layer_descriptor]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": archives.OCI_MANIFEST, "size": len(manifest),
                                                           "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                                                           "annotations": {archives.ANNOTATION_REF_NAME: ref_name}}]}).encode()
    blobs = [(f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob) for blob in (manifest, config, layer)]
    path.write_bytes(tar_bytes(blobs + [("index.json", index), ("oci-layout", archives.OCI_LAYOUT.encode())]))
    return path


def test_repeated_layer_round_trip_through_docker_load_and_save(sources, client, dockerd, images, tmp_path):
    ref = "imgsrc/repeated-layer:1"
    converted = sources.ArchiveSource(oci_archive_repeating_a_layer(tmp_path / "oci.tar", ref))
    with converted.open_stream() as stream:
        assert load_stream(client, stream) == [f"Loaded image: {ref}"]
    saved = cli_save(dockerd, ref, tmp_path / "saved.tar")
    images.remove(ref)
    with tarfile.open(saved) as tar:
        assert [member.issym() for member in tar.getmembers() if member.name.endswith("/layer.tar")].count(True) == 1
    resaved = sources.ArchiveSource(saved)
    assert resaved.identify().image_id == converted.identify().image_id
    assert stream_sha256(resaved) == (sha256_file(saved), saved.stat().st_size)


def test_converted_stream_size_is_known_in_advance(sources, archive_image, tmp_path):
    _built, saved = archive_image
    source = sources.ArchiveSource(archives.oci_archive(saved, tmp_path / "oci.tar", "latest", preserve_config=False))
    assert stream_sha256(source)[1] == source.identify().size


# --- memory ---------------------------------------------------------------------------------------------------

MEASURE_STREAM = r"""
import hashlib, importlib, json, sys
sys.path.insert(0, sys.argv[1])  # the staged collection, as ansible_collections/arvados/cluster
kind, target, read_size = sys.argv[2], sys.argv[3], int(sys.argv[4])
if kind == "local":
    import docker
    module = importlib.import_module("ansible_collections.arvados.cluster.plugins.module_utils._daemon_source")
    source = module.LocalDaemonSource(docker.APIClient(base_url=sys.argv[5], version="auto", timeout=600), target)
else:
    module = importlib.import_module("ansible_collections.arvados.cluster.plugins.module_utils._archive_source")
    source = module.ArchiveSource(target)
source.identify()

def status_kib(field):
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith(field + ":")))

with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")  # the peak RSS (VmHWM) restarts from the current RSS
before = status_kib("VmRSS")
digest, total = hashlib.sha256(), 0
with source.open_stream() as stream:
    while True:
        chunk = stream.read(read_size)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
print(json.dumps({"sha256": digest.hexdigest(), "bytes": total, "growth_mib": (status_kib("VmHWM") - before) / 1024}))
"""


def measure_stream(sources: Sources, kind: str, target: str, read_size: int = MIB, docker_host: str = "") -> dict:
    """Streams a source in a fresh process and reports its bytes and how far its peak RSS rose meanwhile."""
    result = subprocess.run([sys.executable, "-c", MEASURE_STREAM, str(sources.stage_root), kind, target, str(read_size), docker_host],
                            check=True, capture_output=True, text=True, timeout=300)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def big_image(images, dockerd, tmp_path_factory):
    built = images.build("imgsrc/big", "200m", size=200 * MIB)
    folder = tmp_path_factory.mktemp("big")
    saved = cli_save(dockerd, built.ref, folder / "classic.tar")
    oci = archives.oci_archive(saved, folder / "oci.tar", "imgsrc/big:oci", preserve_config=False)
    yield built, saved, oci
    images.remove(built.ref)


@pytest.mark.slow
def test_memory_measurement_sees_a_whole_archive_read_at_once(sources, big_image):
    _built, saved, _oci = big_image
    assert measure_stream(sources, "archive", str(saved), read_size=-1)["growth_mib"] > 150


@pytest.mark.slow
def test_streaming_a_200_mb_archive_unchanged_stays_under_40_mb(sources, big_image):
    _built, saved, _oci = big_image
    measured = measure_stream(sources, "archive", str(saved))
    assert measured["sha256"] == sha256_file(saved)
    assert measured["growth_mib"] < 40


@pytest.mark.slow
def test_converting_a_200_mb_oci_archive_stays_under_40_mb(sources, big_image):
    _built, _saved, oci = big_image
    assert oci.stat().st_size > 200 * MIB
    measured = measure_stream(sources, "archive", str(oci))
    assert measured["bytes"] == sources.ArchiveSource(oci).identify().size
    assert measured["growth_mib"] < 40


@pytest.mark.slow
def test_streaming_a_200_mb_image_from_the_daemon_stays_under_40_mb(sources, big_image, dockerd, tmp_path):
    built, _saved, _oci = big_image
    saved_by_id = cli_save(dockerd, built.image_id, tmp_path / "by-id.tar")
    measured = measure_stream(sources, "local", built.ref, docker_host=dockerd.docker_host)
    assert measured["sha256"] == sha256_file(saved_by_id)
    assert measured["growth_mib"] < 40
