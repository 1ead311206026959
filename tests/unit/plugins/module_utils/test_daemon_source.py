# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Unit tests of the Docker daemon sources: a Docker API client faked; no Docker daemon."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

try:
    import docker
    import requests
except ImportError:
    docker = requests = None

from ansible_collections.arvados.cluster.plugins.module_utils import _archive_source as archive_source
from ansible_collections.arvados.cluster.plugins.module_utils import _daemon_source as daemon_source
from ansible_collections.arvados.cluster.plugins.module_utils._daemon_source import LocalDaemonSource, PullSource, said_once
from ansible_collections.arvados.cluster.plugins.module_utils._errors import (
    DaemonUnavailable,
    ImageNotFound,
    ImageSourceError,
    PullError,
)
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import ImageIdentity
from ansible_collections.arvados.cluster.tests.unit.plugins.module_utils.image_builders import (
    CREATED,
    OCI_INDEX,
    OciImage,
    classic_archive,
    descriptor,
    image_config,
    layer,
    make_tar,
    sha,
    write,
)


@pytest.mark.parametrize("ref, expected", [
    ("tiny", ("tiny", "latest")),
    ("tiny:1.0", ("tiny", "1.0")),
    ("registry.example:5000/team/tiny", ("registry.example:5000/team/tiny", "latest")),
    ("registry.example:5000/team/tiny:2", ("registry.example:5000/team/tiny", "2")),
    ("team/tiny@sha256:" + "b" * 64, ("team/tiny", "sha256:" + "b" * 64)),
])
def test_split_pull_reference(ref, expected):
    assert daemon_source.split_pull_reference(ref) == expected


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
    identity = LocalDaemonSource(api, "tiny:1.0").identify()
    assert identity == ImageIdentity("sha256:" + sha(config), "2024-05-06T05:08:09.123456789Z", ["tiny:1.0"], None)
    assert api.gets == []


@needs_docker_sdk
def test_docker_client_is_accepted_as_well_as_its_api():
    config = image_config("client")
    api = FakeDockerApi(images={"tiny:1.0": classic_inspect(config, ["tiny:1.0"])})
    client = type("FakeDockerClient", (), {"api": api})()
    assert LocalDaemonSource(client, "tiny:1.0").identify().image_id == "sha256:" + sha(config)


@needs_docker_sdk
def test_zero_created_time_means_none():
    inspect = dict(classic_inspect(image_config("z"), []), Created="0001-01-01T00:00:00Z")
    assert LocalDaemonSource(FakeDockerApi(images={"z": inspect}), "z").identify().created == ""


@needs_docker_sdk
def test_local_stream_is_the_save_response_read_lazily_and_closed():
    layers = [layer(bytes(range(256)) * 1000)]
    config = image_config("saved", layers=layers)
    body = classic_archive([(config, layers, ["team/tiny:1.0"])])
    api = FakeDockerApi(images={"team/tiny:1.0": classic_inspect(config, ["team/tiny:1.0"])}, saves={"team/tiny:1.0": body})
    stream = LocalDaemonSource(api, "team/tiny:1.0").open_stream()
    assert stream.read(10) == body[:10]
    assert api.responses[0].bytes_served < len(body)
    assert stream.read() == body[10:]
    stream.close()
    assert api.responses[0].closed
    assert api.gets[0]["stream"] is True
    assert api.gets[0]["timeout"] == (60, None)
    # Saved by id, as arv-keepdocker saves it, so both upload the same bytes.
    assert api.gets[0]["url"].endswith("/images/sha256:" + sha(config) + "/get")


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
    identity = LocalDaemonSource(api, "tiny:29").identify()
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
    assert LocalDaemonSource(api, "tiny:28").identify().image_id == "sha256:" + sha(image.config)


@needs_docker_sdk
def test_containerd_multi_platform_image_follows_the_index_for_the_daemon_platform():
    amd64 = OciImage("c8d-amd64", [layer(b"amd64")])
    arm64 = OciImage("c8d-arm64", [layer(b"arm64")], architecture="arm64")
    index = json.dumps({"mediaType": OCI_INDEX, "manifests": [amd64.descriptor(platform=True), arm64.descriptor(platform=True)]}).encode()
    members: list[tuple[str, bytes | None]] = [(f"blobs/sha256/{sha(blob)}", blob) for blob in [index] + arm64.blobs + amd64.blobs]
    members.append(("index.json", json.dumps({"manifests": [descriptor(OCI_INDEX, index)]}).encode()))
    inspect = {"Id": "sha256:" + sha(index), "Descriptor": descriptor(OCI_INDEX, index), "RepoTags": ["multi:1"], "Os": "linux", "Architecture": "arm64"}
    api = FakeDockerApi(images={"multi:1": inspect}, saves={"multi:1": make_tar(members)})
    assert LocalDaemonSource(api, "multi:1").identify().image_id == "sha256:" + sha(arm64.config)
    chosen = LocalDaemonSource(api, "multi:1", platform="linux/amd64")
    assert chosen.identify().image_id == "sha256:" + sha(amd64.config)


@needs_docker_sdk
def test_image_absent_from_the_daemon_is_image_not_found():
    with pytest.raises(ImageNotFound, match="image team/absent:1 is not in the Docker daemon"):
        LocalDaemonSource(FakeDockerApi(), "team/absent:1").identify()
    with pytest.raises(ImageNotFound, match="team/absent:1"):
        LocalDaemonSource(FakeDockerApi(), "team/absent:1").open_stream()


class UnreachableApi(FakeDockerApi):
    def inspect_image(self, ref):
        raise requests.exceptions.ConnectionError("Connection aborted: No such file or directory")


@needs_docker_sdk
def test_unreachable_daemon_is_daemon_unavailable():
    with pytest.raises(DaemonUnavailable, match="cannot reach the Docker daemon to inspect tiny:1.0"):
        LocalDaemonSource(UnreachableApi(), "tiny:1.0").identify()


class RefusingApi(FakeDockerApi):
    def inspect_image(self, ref):
        raise docker.errors.APIError("500 Server Error", explanation="layer store is broken")


@needs_docker_sdk
def test_other_daemon_errors_are_neither_unavailable_nor_not_found():
    with pytest.raises(ImageSourceError, match="layer store is broken") as caught:
        LocalDaemonSource(RefusingApi(), "tiny:1.0").identify()
    assert not isinstance(caught.value, (DaemonUnavailable, ImageNotFound))


@needs_docker_sdk
def test_pull_missing_does_not_pull_what_the_daemon_has():
    config = image_config("present")
    api = FakeDockerApi(images={"127.0.0.1:5000/tiny:1": classic_inspect(config, ["127.0.0.1:5000/tiny:1"])})
    source = PullSource(api, "127.0.0.1:5000/tiny:1", policy="missing")
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
    source = PullSource(api, "127.0.0.1:5000/team/tiny:1", policy="missing")
    assert source.identify().image_id == "sha256:" + sha(config)
    assert source.pulled
    assert api.pulls == [("127.0.0.1:5000/team/tiny", "1", None)]
    source.identify()
    assert len(api.pulls) == 1


@needs_docker_sdk
def test_pull_always_pulls_even_what_the_daemon_has():
    config = image_config("always")
    api = PullingApi("tiny:1", classic_inspect(config, ["tiny:1"]), images={"tiny:1": classic_inspect(config, ["tiny:1"])})
    source = PullSource(api, "tiny:1", policy="always", platform="linux/amd64")
    source.identify()
    assert source.pulled and api.pulls == [("tiny", "1", "linux/amd64")]


@needs_docker_sdk
def test_pull_missing_pulls_when_the_local_image_is_of_another_platform():
    config = image_config("arm")
    api = PullingApi("tiny:1", classic_inspect(config, ["tiny:1"]), images={"tiny:1": dict(classic_inspect(config, ["tiny:1"]), Architecture="arm64")})
    source = PullSource(api, "tiny:1", policy="missing", platform="linux/amd64")
    source.identify()
    assert source.pulled


@needs_docker_sdk
def test_pull_error_in_the_progress_stream_is_a_pull_error():
    api = FakeDockerApi(pull_messages=[{"status": "Pulling"}, {"error": "manifest for 127.0.0.1:5000/tiny:9 not found"}])
    with pytest.raises(PullError, match=r"pull 127.0.0.1:5000/tiny:9 failed: manifest for .* not found; check the name"):
        PullSource(api, "127.0.0.1:5000/tiny:9", policy="always").identify()


class RefusedPullApi(FakeDockerApi):
    def pull(self, repository, tag=None, stream=False, decode=False, platform=None):
        raise docker.errors.APIError("500 Server Error", explanation="Get https://registry.example/v2/: dial tcp: connection refused")


@needs_docker_sdk
def test_pull_refused_by_the_daemon_is_a_pull_error_with_the_login_hint():
    with pytest.raises(PullError, match=r"pull registry.example/tiny:1 failed: Get .*connection refused; .*docker login"):
        PullSource(RefusedPullApi(), "registry.example/tiny:1", policy="always").identify()


@needs_docker_sdk
def test_local_image_of_another_platform_is_not_found_for_the_asked_platform():
    inspect = dict(classic_inspect(image_config("arm"), ["tiny:1"]), Architecture="arm64", Variant="v8")
    with pytest.raises(ImageNotFound, match="tiny:1 in the Docker daemon is for linux/arm64/v8, not linux/amd64"):
        LocalDaemonSource(FakeDockerApi(images={"tiny:1": inspect}), "tiny:1", platform="linux/amd64").identify()
    assert LocalDaemonSource(FakeDockerApi(images={"tiny:1": inspect}), "tiny:1", platform="linux/arm64").identify()


@needs_docker_sdk
def test_an_image_id_cannot_be_pulled():
    with pytest.raises(PullError, match="an image id names no registry"):
        PullSource(FakeDockerApi(), "sha256:" + "c" * 64, policy="always").identify()


@needs_docker_sdk
def test_pull_policy_is_checked():
    with pytest.raises(ImageSourceError, match="pull policy 'sometimes'"):
        PullSource(FakeDockerApi(), "tiny:1", policy="sometimes")


# --- without the Docker SDK ----------------------------------------------------------------------------------

def imported_afresh(module, monkeypatch):
    """`module` imported again from its file, as a managed node without the Docker SDK would."""
    spec = importlib.util.spec_from_file_location(module.__name__ + "_without_docker", module.__file__)
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fresh)
    spec.loader.exec_module(fresh)
    return fresh


def test_module_imports_without_the_docker_sdk_and_archives_still_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    module = imported_afresh(daemon_source, monkeypatch)
    assert module.HAS_DOCKER is False and "docker" in module.DOCKER_IMPORT_ERROR
    config = image_config("no-sdk")
    path = write(tmp_path, "a.tar", classic_archive([(config, [layer(b"x")], [])]))
    assert imported_afresh(archive_source, monkeypatch).ArchiveSource(path).identify().image_id == "sha256:" + sha(config)
    with pytest.raises(ImageSourceError, match="Docker SDK for Python is required"):
        module.LocalDaemonSource(object(), "tiny:1")


@pytest.mark.parametrize("explanation, said", [
    ("no such image: team/tiny:1.0: No such image: team/tiny:1.0", "No such image: team/tiny:1.0"),
    ("No such image: sha256:0123456789ab", "No such image: sha256:0123456789ab"),
    ("manifest unknown: manifest unknown", "manifest unknown"),
    ("pull access denied for x: repository does not exist", "pull access denied for x: repository does not exist"),
])
def test_the_daemons_message_is_said_once(explanation: str, said: str) -> None:
    assert said_once(explanation) == said
