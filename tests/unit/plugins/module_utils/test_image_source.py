# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Unit tests of the image metadata every source reads: docker-archive manifest.json, OCI descriptors, configs."""

from __future__ import annotations

import json

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils import _image_source as image_source
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId
from ansible_collections.arvados.cluster.tests.unit.plugins.module_utils.image_builders import image_config, ref_annotation, sha


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


def test_image_id_is_sha256_of_the_exact_config_bytes():
    config = image_config("x")
    assert str(ImageId.of_config(config)) == "sha256:" + sha(config)


def test_blob_member_name_only_takes_sha256():
    assert image_source.blob_member_name("sha256:" + "a" * 64, "p") == "blobs/sha256/" + "a" * 64
    with pytest.raises(ArchiveError, match="only sha256"):
        image_source.blob_member_name("sha512:" + "a" * 128, "p")


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
