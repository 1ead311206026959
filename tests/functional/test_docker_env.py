"""The Docker harness against the real daemon and registry: what other tests take for granted."""
from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys
import tarfile

import psutil
import pytest

from harness import archives
from harness.docker_env import DockerDaemon, Registry, parse_created, payload_bytes

HARNESS = pathlib.Path(__file__).resolve().parents[1] / "harness" / "docker_env.py"
MIB = 1 << 20


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None, name
    with member:
        return member.read()


def _saved_config(archive: pathlib.Path) -> tuple[str, bytes]:
    """The Config entry of a classic archive's manifest.json and the bytes it names."""
    with tarfile.open(archive) as tar:
        manifest = json.loads(_read_member(tar, "manifest.json"))
        assert len(manifest) == 1
        return manifest[0]["Config"], _read_member(tar, manifest[0]["Config"])


def _process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _all_gone(processes: list[psutil.Process]) -> bool:
    return not any(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE for proc in processes)


def test_daemon_answers_with_vfs_driver(dockerd):
    client = dockerd.client()
    assert client.ping()
    assert client.info()["Driver"] == "vfs"
    assert dockerd.env() == {"DOCKER_HOST": dockerd.docker_host}
    assert dockerd.cli("info", "--format", "{{.Driver}}").stdout.strip() == "vfs"


def test_built_image_has_payload_and_config_digest_id(images, tmp_path):
    built = images.build("harness/payload", "v1", size=3 * MIB, seed=7)
    assert built.ref == "harness/payload:v1"
    assert built.image_id.startswith("sha256:") and len(built.image_id) == 71
    assert 3 * MIB < built.size < 3 * MIB + 4 * MIB

    saved = images.save(built.ref, tmp_path / "payload.tar")
    config_name, config_bytes = _saved_config(saved)
    # Ids are compared with the saved config digest: newer containerd-store engines report a manifest digest (arvados/arvados#488).
    assert config_name == f"{built.image_id.removeprefix('sha256:')}.json"
    assert f"sha256:{hashlib.sha256(config_bytes).hexdigest()}" == built.image_id
    assert json.loads(config_bytes)["created"] == built.created

    with tarfile.open(saved) as tar:
        layer_name = json.loads(_read_member(tar, "manifest.json"))[0]["Layers"][0]
        with tarfile.open(fileobj=tar.extractfile(layer_name)) as layer:
            assert _read_member(layer, "payload/random.bin") == payload_bytes(3 * MIB, 7)
            assert layer.getmember("bin/sh").linkname == "busybox"
    images.remove(built.ref)


def test_same_request_gives_same_layer(images, dockerd):
    first = images.build("harness/same", "a", size=MIB, seed=1)
    second = images.build("harness/same", "b", size=MIB, seed=1)
    other = images.build("harness/same", "c", size=MIB, seed=2)
    layers = {image.tag: dockerd.client().api.inspect_image(image.ref)["RootFS"]["Layers"] for image in (first, second, other)}
    assert layers["a"] == layers["b"] != layers["c"]
    for image in (first, second, other):
        images.remove(image.ref)


def test_distinct_second_spaces_creation_times(images):
    first = images.build("harness/order", "first", distinct_second=True)
    second = images.build("harness/order", "second", distinct_second=True)
    gap = parse_created(second.created) - parse_created(first.created)
    assert gap.total_seconds() >= 1.0
    assert int(parse_created(second.created).timestamp()) > int(parse_created(first.created).timestamp())
    images.remove(first.ref)
    images.remove(second.ref)


def test_push_remove_pull_keeps_the_id(images, registry, dockerd):
    built = images.build("harness/pushed", "1.0", size=MIB)
    pushed = images.push(built.ref, registry)
    assert pushed == f"{registry.address}/harness/pushed:1.0"
    images.remove(pushed)
    images.remove(built.ref)
    assert not dockerd.client().images.list(name="harness/pushed")
    assert images.pull(pushed) == built.image_id
    images.remove(pushed)


def test_stop_leaves_no_process(tmp_path):
    daemon = DockerDaemon(tmp_path / "dockerd").start()
    registry = Registry(tmp_path / "registry").start()
    processes = _process_tree(daemon.pid) + _process_tree(registry.pid)
    assert {proc.name() for proc in processes} >= {"dockerd", "containerd", "docker-registry"}
    registry.stop()
    daemon.stop()
    assert _all_gone(processes)
    assert not daemon.short_dir.exists()
    daemon.stop()
    registry.stop()


def _harness_cli(action: str, state: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HARNESS), action, "--state-dir", str(state)], check=True, capture_output=True, text=True, timeout=120)


def test_cli_up_detaches_and_down_is_idempotent(tmp_path):
    state = tmp_path / "services"
    summary = json.loads(_harness_cli("up", state).stdout)
    assert json.loads((state / "docker.json").read_text(encoding="utf-8")) == summary
    processes = _process_tree(summary["dockerd_pid"]) + _process_tree(summary["registry_pid"])
    try:
        assert DockerDaemon(state / "dockerd").client().ping()
        assert summary["registry"].startswith("127.0.0.1:")
        assert json.loads(_harness_cli("up", state).stdout) == summary
    finally:
        _harness_cli("down", state)
    assert _all_gone(processes)
    _harness_cli("down", state)


@pytest.fixture(scope="module")
def classic_archive(images, tmp_path_factory) -> tuple[pathlib.Path, str]:
    built = images.build("harness/archive", "v2", size=MIB)
    path = images.save(built.ref, tmp_path_factory.mktemp("archives") / "classic.tar")
    images.remove(built.ref)
    return path, built.image_id


def test_classic_archive_layout(classic_archive):
    path, image_id = classic_archive
    hex_id = image_id.removeprefix("sha256:")
    names = archives.member_names(path)
    assert {"manifest.json", "repositories", f"{hex_id}.json"} <= set(names)
    assert any(name.endswith("/layer.tar") for name in names)
    assert archives.config_digest(path) == image_id


def test_docker25_archive_layout_loads_back(classic_archive, images, tmp_path):
    path, image_id = classic_archive
    dest = archives.docker25_archive(path, tmp_path / "docker25.tar")
    names = archives.member_names(dest)
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    assert f"blobs/sha256/{image_id.removeprefix('sha256:')}" in names
    assert archives.config_digest(dest) == image_id
    with tarfile.open(dest) as tar:
        index = json.loads(_read_member(tar, "index.json"))
    annotations = index["manifests"][0]["annotations"]
    assert annotations == {"io.containerd.image.name": "docker.io/harness/archive:v2", "org.opencontainers.image.ref.name": "v2"}
    images.daemon.cli("load", "-i", str(dest))
    assert images.client.api.inspect_image("harness/archive:v2")["Id"] == image_id
    images.remove("harness/archive:v2")


def test_oci_archive_preserves_the_config(classic_archive, tmp_path):
    path, image_id = classic_archive
    dest = archives.oci_archive(path, tmp_path / "oci.tar", "v2")
    assert sorted(name for name in archives.member_names(dest) if not name.startswith("blobs")) == ["index.json", "oci-layout"]
    assert archives.config_digest(dest) == image_id


def test_oci_archive_conversion_rewrites_the_config(classic_archive, tmp_path):
    path, image_id = classic_archive
    dest = archives.oci_archive(path, tmp_path / "converted.tar", "v2", preserve_config=False)
    assert "manifest.json" not in archives.member_names(dest)
    converted = archives.config_digest(dest)
    assert converted != image_id
    with tarfile.open(path) as classic, tarfile.open(dest) as oci:
        original = json.loads(_read_member(classic, f"{image_id.removeprefix('sha256:')}.json"))
        rewritten = json.loads(_read_member(oci, f"blobs/sha256/{converted.removeprefix('sha256:')}"))
    assert rewritten["created"] == original["created"]
    assert rewritten["rootfs"] == original["rootfs"]
