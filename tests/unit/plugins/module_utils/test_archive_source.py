# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Unit tests of the archive source: archives built in memory, no Docker daemon."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils import _archive_source as archive_source
from ansible_collections.arvados.cluster.plugins.module_utils._archive_source import ArchiveSource
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import normalise_repo_tag
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import ImageIdentity
from ansible_collections.arvados.cluster.tests.unit.plugins.module_utils.image_builders import (
    CREATED,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    TAR_LAYER,
    Link,
    OciImage,
    classic_archive,
    descriptor,
    image_config,
    layer,
    make_tar,
    oci_archive,
    read_stream,
    ref_annotation,
    sha,
    tar_contents,
    write,
)


# --- names ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, normalized", [
    ("tiny", "tiny:latest"),
    ("tiny:1.0", "tiny:1.0"),
    ("docker.io/library/tiny:1.0", "tiny:1.0"),
    ("docker.io/team/tiny", "team/tiny:latest"),
    ("registry.example:5000/team/tiny", "registry.example:5000/team/tiny:latest"),
    ("registry.example:5000/team/tiny:2", "registry.example:5000/team/tiny:2"),
])
def test_normalise_repo_tag(name, normalized):
    assert normalise_repo_tag(name) == normalized


def test_names_match_either_spelling_and_names_docker_would_refuse_only_as_written():
    assert archive_source.names_match("docker.io/team/second:2", ["first:1", "team/second:2"])
    assert archive_source.names_match("tiny", ["docker.io/library/tiny:latest"])
    assert archive_source.names_match("Tiny:1", ["Tiny:1"])
    assert not archive_source.names_match("tiny:2", ["tiny:1", "Tiny:2"])


@pytest.mark.parametrize("names", [
    [],                                              # `docker save <id>` names nothing
    ["team/tiny:9.0"],
    ["team/tiny:3.0", "docker.io/team/tiny:9.0"],    # the stored form matches either spelling
    ["9.0"],                                         # an OCI ref.name that is a tag alone
])
def test_archive_naming_nothing_or_the_wanted_name_gives_no_warning(names):
    assert archive_source.archive_name_warning("team/tiny:9.0", names, "/srv/tiny.tar") is None


@pytest.mark.parametrize("names, shown", [
    (["team/tiny:3.0"], "team/tiny:3.0"),
    (["team/tiny:3.0", "other:9.0"], "team/tiny:3.0, other:9.0"),
    (["3.0", "docker.io/team/tiny:3.0"], "3.0, docker.io/team/tiny:3.0"),
])
def test_archive_naming_its_image_otherwise_is_a_warning_naming_its_names(names, shown):
    warning = archive_source.archive_name_warning("team/tiny:9.0", names, "/srv/tiny.tar")
    assert warning == (f"archive_path: /srv/tiny.tar names its image {shown}, not team/tiny:9.0; it is stored as team/tiny:9.0 "
                       "all the same. Check that the archive holds the image meant for team/tiny:9.0, or give one of its names as name")


def test_archive_source_warns_once_of_an_archive_named_otherwise(tmp_path):
    config = image_config("renamed")
    path = write(tmp_path, "renamed.tar", classic_archive([(config, [layer(b"x")], ["team/tiny:3.0"])]))
    warnings: list[str] = []
    source = ArchiveSource(path, ref="team/tiny:9.0", warn=warnings.append)
    source.identify()
    source.identify()
    assert len(warnings) == 1 and "names its image team/tiny:3.0, not team/tiny:9.0" in warnings[0]
    assert ArchiveSource(path, ref="team/tiny:3.0", warn=warnings.append).identify() and len(warnings) == 1


def test_oci_archive_names_come_from_its_annotations(tmp_path):
    image = OciImage("annotated", [layer(b"annotated")], media_type=TAR_LAYER)
    annotations = {"io.containerd.image.name": "docker.io/team/tiny:3.0", "org.opencontainers.image.ref.name": "3.0"}
    path = write(tmp_path, "oci.tar", oci_archive([image.descriptor(annotations)], image.blobs))
    warnings: list[str] = []
    ArchiveSource(path, ref="team/tiny:9.0", warn=warnings.append).identify()
    ArchiveSource(path, ref="team/tiny:3.0", warn=warnings.append).identify()
    assert warnings == [archive_source.archive_name_warning("team/tiny:9.0", ["3.0", "docker.io/team/tiny:3.0"], path)]


# --- archives: docker-archive -------------------------------------------------------------------------------

def test_classic_archive_id_is_the_config_digest_and_streams_unchanged(tmp_path):
    config = image_config("classic", layers=[layer(b"one"), layer(b"two")])
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
    assert source.identify() == ImageIdentity("sha256:" + sha(image.config), CREATED, ["tiny:25"], len(data))
    assert not source.converted
    assert read_stream(source) == data


def two_image_archive() -> tuple[bytes, bytes, bytes, list[bytes]]:
    second_layers = [layer(b"second-a"), layer(b"second-b")]
    first, second = image_config("first", layers=[layer(b"first")]), image_config("second", layers=second_layers)
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
    data = layer(b"repeated")
    config = image_config("repeated", layers=[data, data])
    manifest = [{"Config": f"{sha(config)}.json", "RepoTags": ["rep:1"], "Layers": ["first/layer.tar", "second/layer.tar"]}]
    members = [(f"{sha(config)}.json", config), ("first/", None), ("first/layer.tar", data), ("second/", None), ("second/layer.tar", link)]
    if extra:
        other = image_config("other", layers=[layer(b"other")])
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
    return classic_archive([(image_config("x", layers=[layer(b"z" * 20000)]), [layer(b"z" * 20000)], ["x:1"])])


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
