# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Unit tests of the pure parts of source: registry: references, saved logins, manifests and the archive they become."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._archive_check import ArchiveCheck
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError, PullError
from ansible_collections.arvados.cluster.plugins.module_utils._records import ImageCollection
from ansible_collections.arvados.cluster.plugins.module_utils._registry_archive import archive_chunks, parse_image_manifest
from ansible_collections.arvados.cluster.plugins.module_utils._registry_record import RecordedImage, recorded_image
from ansible_collections.arvados.cluster.plugins.module_utils._registry_ref import (
    Credentials,
    config_credentials,
    helper_credentials,
    parse_registry_name,
)

DIGEST = "sha256:" + "ab" * 32


def test_references_as_docker_reads_them():
    ref, image = parse_registry_name("registry.example:5000/team/bwa:0.7.17", None)
    expected = ("registry.example:5000", "team/bwa", "0.7.17", "registry.example:5000/team/bwa:0.7.17")
    assert (ref.host, ref.repository, ref.reference, image.repo_tag) == expected
    ref, image = parse_registry_name("busybox", None)
    assert (ref.host, ref.api_host, ref.repository, image.repo_tag) == ("docker.io", "registry-1.docker.io", "library/busybox", "busybox:latest")
    ref, image = parse_registry_name("index.docker.io/team/x:1", None)
    assert (ref.host, ref.repository, image.repo_tag) == ("docker.io", "team/x", "team/x:1")
    assert parse_registry_name("127.0.0.1:5000/x", None)[0].is_loopback
    assert not parse_registry_name("registry.example/x", None)[0].is_loopback


def test_a_digest_pins_the_manifest_and_links_a_tag_only_when_given():
    ref, image = parse_registry_name(f"team/bwa@{DIGEST}", None)
    assert ref.reference == DIGEST and image.repo_tag is None
    ref, image = parse_registry_name(f"team/bwa@{DIGEST}", "0.7.17")
    assert ref.reference == DIGEST and image.repo_tag == "team/bwa:0.7.17"
    with pytest.raises(ImageRefError, match="manifest digest"):
        parse_registry_name("team/bwa@sha256:abc", None)


def test_saved_logins_under_dockers_keys():
    keys = parse_registry_name("busybox", None)[0].credential_keys()
    encoded = base64.b64encode(b"alice:s3cret").decode()
    found = config_credentials({"auths": {"https://index.docker.io/v1/": {"auth": encoded}}}, keys, "config.json")
    assert isinstance(found, Credentials) and (found.username, found.password) == ("alice", "s3cret")
    assert "s3cret" not in repr(found)
    keys = parse_registry_name("registry.example:5000/x", None)[0].credential_keys()
    assert config_credentials({"credHelpers": {"registry.example:5000": "pass"}, "credsStore": "desktop"}, keys, "c") == "pass"
    assert config_credentials({"credsStore": "desktop", "auths": {"registry.example:5000": {"auth": encoded}}}, keys, "c") == "desktop"
    assert config_credentials({"auths": {"other:5000": {"auth": encoded}}}, keys, "c") is None


def test_credential_helper_answers():
    found = helper_credentials(0, '{"ServerURL": "r:5000", "Username": "alice", "Secret": "s3cret"}', "pass")
    assert (found.username, found.password, found.origin) == ("alice", "s3cret", "credential helper docker-credential-pass")
    assert helper_credentials(1, "credentials not found in native keychain\n", "pass") is None
    with pytest.raises(PullError, match="docker-credential-pass failed .exit status 3: locked"):
        helper_credentials(3, "locked\n", "pass")
    with pytest.raises(PullError, match="identity token"):
        helper_credentials(0, '{"Username": "<token>", "Secret": "refresh"}', "pass")
    with pytest.raises(PullError, match="JSON of Username and Secret"):
        helper_credentials(0, "not json", "pass")


def _stored(uuid: str, image_hex: str, reference: str, digest: str = DIGEST) -> ImageCollection:
    properties = {"docker-image-registry-reference": reference, "docker-image-manifest-digest": digest}
    return ImageCollection(uuid=uuid, portable_data_hash="", owner_uuid="p", file_names=(f"sha256:{image_hex}.tar",), properties=properties)


def test_the_image_a_project_records_for_a_reference():
    reference = "r:5000/team/bwa:1"
    one = _stored("c1", "11" * 32, reference)
    assert recorded_image([one], [], reference) == RecordedImage("sha256:" + "11" * 32, DIGEST, "")
    assert recorded_image([one], [], "r:5000/team/bwa:2") is None  # stored from another reference
    assert recorded_image([one, _stored("c2", "11" * 32, reference)], [], reference) is not None  # two copies agree
    assert recorded_image([one, _stored("c3", "22" * 32, reference, "sha256:" + "cd" * 32)], [], reference) is None
    assert recorded_image([ImageCollection(uuid="c4", portable_data_hash="", owner_uuid="p", file_names=("sha256:x.tar",))], [],
                          reference) is None


def _manifest(layers: list[dict]) -> dict:
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": DIGEST, "size": 10}
    return {"schemaVersion": 2, "config": config, "layers": layers}


def test_manifests_that_would_not_load_are_refused():
    zstd = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": DIGEST, "size": 1}
    with pytest.raises(PullError, match="zstd"):
        parse_image_manifest(_manifest([zstd]), "m")
    foreign = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": DIGEST, "size": 1}
    with pytest.raises(PullError, match="foreign"):
        parse_image_manifest(_manifest([foreign]), "m")
    with pytest.raises(PullError, match="schema 1"):
        parse_image_manifest({"schemaVersion": 1}, "m")


def _image_blobs() -> tuple[dict, bytes, dict[str, bytes]]:
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    layer = gzip.compress(layer_tar.getvalue(), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer_tar.getvalue()).hexdigest()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]}}).encode()
    blobs = {"sha256:" + hashlib.sha256(data).hexdigest(): data for data in (layer, config)}
    layer_digest, config_digest = list(blobs)
    manifest = {"schemaVersion": 2, "config": {"digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest, "size": len(layer)}] * 2}
    return manifest, config, blobs


def test_the_archive_depends_on_the_manifest_alone_and_loads_as_the_image():
    manifest, config, blobs = _image_blobs()
    image = parse_image_manifest(manifest, "m")
    archive = b"".join(archive_chunks(image, config, lambda blob: [blobs[blob.digest]], "m"))
    assert archive == b"".join(archive_chunks(image, config, lambda blob: [blobs[blob.digest]], "m"))
    assert len(archive) == image.archive_size()
    check = ArchiveCheck(image.image_id, "m")
    check.feed(archive)
    check.finish()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.getnames()[0] == "manifest.json"
        assert json.loads(tar.extractfile("manifest.json").read())[0]["RepoTags"] is None


def test_a_blob_of_another_size_fails_the_stream():
    manifest, config, blobs = _image_blobs()
    image = parse_image_manifest(manifest, "m")
    with pytest.raises(PullError, match="served only"):
        b"".join(archive_chunks(image, config, lambda blob: [blobs[blob.digest][:-1]], "m"))
