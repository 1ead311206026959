# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import (
    ImageRef,
    ImageRefError,
    default_collection_name,
    lowercase_hint,
    parse_image_ref,
    split_container_image,
    stored_name_hints,
)
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import keep_file_name

IMAGE_HEX = "be05d7a3c8f2e1b0" * 4
IMAGE_ID = "sha256:" + IMAGE_HEX


@pytest.mark.parametrize("name, tag, repo, expected_tag", [
    ("tiny", None, "tiny", "latest"),
    ("tiny:1.0", None, "tiny", "1.0"),
    ("tiny", "1.0", "tiny", "1.0"),
    ("tiny:1.0", "1.0", "tiny", "1.0"),
    ("team/bwa:0.7.17", None, "team/bwa", "0.7.17"),
    ("registry.example:5000/team/bwa:0.7.17", None, "registry.example:5000/team/bwa", "0.7.17"),
    ("registry.example:5000/team/bwa", None, "registry.example:5000/team/bwa", "latest"),
    ("registry.example:5000/team/bwa", "v2", "registry.example:5000/team/bwa", "v2"),
    ("localhost/bwa", None, "localhost/bwa", "latest"),
    ("localhost:5000/bwa:1", None, "localhost:5000/bwa", "1"),
    ("[::1]:5000/bwa:1", None, "[::1]:5000/bwa", "1"),
    ("my_org/my-tool__x.y", None, "my_org/my-tool__x.y", "latest"),
    ("a--b", None, "a--b", "latest"),
    ("tiny:V1_RC-2.x", None, "tiny", "V1_RC-2.x"),
    ("tiny:" + "t" * 128, None, "tiny", "t" * 128),
    # Bare hex with a tag is a repository: `name: x, tag: y` means `name: x:y`.
    ("abcdef123456:1", None, "abcdef123456", "1"),
    ("abcdef123456", "1", "abcdef123456", "1"),
    ("abcdef12345", None, "abcdef12345", "latest"),
])
def test_repo_and_tag(name, tag, repo, expected_tag):
    ref = parse_image_ref(name, tag)
    assert (ref.repo, ref.tag, ref.image_id_prefix) == (repo, expected_tag, None)
    assert ref.repo_tag == f"{repo}:{expected_tag}"
    assert not ref.is_image_id


@pytest.mark.parametrize("name, repo", [
    ("docker.io/library/debian", "debian"),
    ("index.docker.io/library/debian", "debian"),
    ("library/debian", "debian"),
    ("docker.io/curii/arvados-jobs", "curii/arvados-jobs"),
    ("index.docker.io/curii/arvados-jobs", "curii/arvados-jobs"),
    ("docker.io/library/a/b", "library/a/b"),
    ("registry.example:443/team/bwa", "registry.example/team/bwa"),
    ("docker.io:443/library/debian", "debian"),
    ("registry.example:4430/team/bwa", "registry.example:4430/team/bwa"),
    ("quay.io/biocontainers/samtools", "quay.io/biocontainers/samtools"),
])
def test_normalised_as_docker_does(name, repo):
    assert parse_image_ref(name).repo == repo


@pytest.mark.parametrize("name, image_id_prefix", [
    (IMAGE_ID, IMAGE_ID),
    (IMAGE_HEX, IMAGE_ID),
    ("sha256:be05", "sha256:be05"),
    ("be05d7a3c8f2", "sha256:be05d7a3c8f2"),
])
def test_image_ids(name, image_id_prefix):
    ref = parse_image_ref(name)
    assert ref.is_image_id
    assert ref.image_id_prefix == image_id_prefix
    assert (ref.repo, ref.tag, ref.repo_tag) == (None, None, None)


def test_full_image_id_only_for_64_hex_digits():
    assert parse_image_ref(IMAGE_HEX).full_image_id == IMAGE_ID
    assert parse_image_ref("sha256:be05d7a3c8f2").full_image_id is None
    assert parse_image_ref("tiny").full_image_id is None


@pytest.mark.parametrize("name, tag, fragments", [
    ("", None, ["name", "empty"]),
    ("tiny 1.0", None, ["name", "whitespace"]),
    (" tiny", None, ["name", "whitespace"]),
    ("tiny:", None, ["name", "':' must be followed by a tag"]),
    ("tiny", "", ["tag", "':' must be followed by a tag"]),
    ("tiny", "1 0", ["tag", "whitespace"]),
    (":1.0", None, ["name", "empty"]),
    ("tiny:" + "t" * 129, None, ["name", "longer than 128"]),
    ("tiny", "t" * 129, ["tag", "longer than 128"]),
    ("tiny:.hidden", None, ["name", "not a valid tag"]),
    ("tiny", "-x", ["tag", "not a valid tag"]),
    ("Tiny:1.0", None, ["name", "must be lowercase", "'tiny'"]),
    ("MyOrg/tool", None, ["name", "must be lowercase", "'myorg/tool'"]),
    ("registry.example/Team/bwa", None, ["name", "must be lowercase"]),
    ("tiny@sha256:" + IMAGE_HEX, None, ["name", "digest", "repo:tag"]),
    ("tiny:1.0@sha256:" + IMAGE_HEX, None, ["name", "digest"]),
    ("tiny:1.0", "2.0", ["name", "tag", "'1.0'", "'2.0'", "only one of"]),
    ("sha256:be0", None, ["name", "4 to 64 hex"]),
    ("sha256:latest", None, ["name", "not an image id"]),
    ("sha256:" + IMAGE_HEX + "0", None, ["name", "4 to 64 hex"]),
    ("sha256:BE05D7A3", None, ["name", "lowercase"]),
    (IMAGE_ID, "1.0", ["tag", "image id", "no tag"]),
    ("-tiny", None, ["name", "not a valid repository name"]),
    ("tiny_", None, ["name", "not a valid repository name"]),
    ("a...b", None, ["name", "not a valid repository name"]),
    ("team//bwa", None, ["name", "not a valid repository name"]),
    ("-bad.host:5000/bwa", None, ["name", "not a valid registry host"]),
    ("host:port/bwa", None, ["name", "not a valid registry host"]),
    ("a/" * 127 + "bb", None, ["name", "longer than 255"]),
])
def test_rejected(name, tag, fragments):
    with pytest.raises(ImageRefError) as caught:
        parse_image_ref(name, tag)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_error_is_a_value_error():
    assert issubclass(ImageRefError, ValueError)


def test_image_ref_is_frozen():
    ref = parse_image_ref("tiny")
    with pytest.raises(AttributeError):
        ref.tag = "other"  # type: ignore[misc]
    assert ref == ImageRef(repo="tiny", tag="latest")


def test_keep_file_name():
    assert keep_file_name(IMAGE_ID) == f"sha256:{IMAGE_HEX}.tar"
    assert keep_file_name(IMAGE_HEX) == f"sha256:{IMAGE_HEX}.tar"
    with pytest.raises(ValueError):
        keep_file_name("sha256:be05")


@pytest.mark.parametrize("repo_tag, expected", [
    ("tiny:1.0", "Docker image tiny:1.0 sha256:be05d"),
    ("registry.example:5000/team/bwa:0.7.17", "Docker image registry.example:5000 team bwa:0.7.17 sha256:be05d"),
    (None, "Docker image sha256:be05d"),
])
def test_default_collection_name(repo_tag, expected):
    assert default_collection_name(repo_tag, IMAGE_ID) == expected


@pytest.mark.parametrize("container_image, term, tag", [
    ("tiny", "tiny", "latest"),
    ("tiny:1.0", "tiny", "1.0"),
    # The server splits at the FIRST ':', unlike Docker.
    ("registry.example:5000/team/bwa", "registry.example", "5000/team/bwa"),
    ("registry.example:5000/team/bwa:1", "registry.example", "5000/team/bwa:1"),
    (IMAGE_ID, "sha256", IMAGE_HEX),
    ("tiny:", "tiny", ""),
    (IMAGE_HEX, IMAGE_HEX, "latest"),
])
def test_split_container_image(container_image, term, tag):
    assert split_container_image(container_image) == (term, tag)


@pytest.mark.parametrize("name, hints", [
    ("team/tiny:1.0", []),
    ("Team/Tiny:1.0", ["repository name 'Team/Tiny' must be lowercase; use 'team/tiny'"]),
    ("docker.io/team/tiny:1.0", ["docker.io/team/tiny:1.0 is stored as team/tiny:1.0 (the name Docker lists); use 'team/tiny:1.0'"]),
    ("index.docker.io/library/debian:12", ["index.docker.io/library/debian:12 is stored as debian:12 (the name Docker lists); use 'debian:12'"]),
    ("registry.example:443/bwa:1", ["registry.example:443/bwa:1 is stored as registry.example/bwa:1 (the name Docker lists); use 'registry.example/bwa:1'"]),
    ("team/other", ["'team/other' names no tag, so team/other:latest was looked for; give the tag you mean"]),
    ("Team/Other", ["repository name 'Team/Other' must be lowercase; use 'team/other'",
                    "'Team/Other' names no tag, so Team/Other:latest was looked for; give the tag you mean"]),
    ("docker.io/team/other", ["docker.io/team/other:latest is stored as team/other:latest (the name Docker lists); use 'team/other:latest'",
                              "'docker.io/team/other' names no tag, so docker.io/team/other:latest was looked for; give the tag you mean"]),
    ("registry.example:5000/bwa", []),
    (IMAGE_ID, []),
    (IMAGE_HEX, []),
    ("team bad:1.0", []),
    ("Team/Bad..Name:1.0", []),
])
def test_stored_name_hints_say_what_the_module_would_store(name, hints):
    assert stored_name_hints(name) == hints


def test_the_lowercase_hint_is_the_modules_error():
    with pytest.raises(ImageRefError) as caught:
        parse_image_ref("Team/Tiny:1.0")
    assert str(caught.value) == f"name: {lowercase_hint('Team/Tiny')}."
