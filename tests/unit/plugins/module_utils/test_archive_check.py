# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Unit tests of the streaming archive check, of reading a stored image's segments, of lock files and of partial failures."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import threading

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._apply import image_lock, remove_stale_locks
from ansible_collections.arvados.cluster.plugins.module_utils._archive_check import (
    ArchiveCheck,
    checked_chunks,
    checked_stream,
    is_layout_member,
)
from ansible_collections.arvados.cluster.plugins.module_utils._archive_source import ArchiveSource
from ansible_collections.arvados.cluster.plugins.module_utils._errors import (
    ArchiveError,
    ArvadosClientError,
    SavedImageError,
    failure_of,
    note_changes_made,
)
from ansible_collections.arvados.cluster.plugins.module_utils._records import file_segments
from ansible_collections.arvados.cluster.tests.unit.plugins.module_utils.image_builders import (
    GZIP_LAYER,
    Link,
    OciImage,
    classic_archive,
    image_config,
    layer,
    make_tar,
    oci_archive,
    read_stream,
    sha,
    tar_contents,
    write,
)

LAYERS = [layer(b"one"), layer(b"two" * 5000)]
CONFIG = image_config("checked", layers=LAYERS)
IMAGE_ID = "sha256:" + sha(CONFIG)
GOOD = classic_archive([(CONFIG, LAYERS, ["team/tiny:1.0"])])


def check(data: bytes, image_id: str = IMAGE_ID, chunks: int = 1, error=ArchiveError) -> None:
    """Feed `data` in `chunks` random pieces, then finish: what the upload does, whatever its read sizes."""
    checker = ArchiveCheck(image_id, "a.tar", error=error)
    cuts = sorted(random.Random(chunks).sample(range(1, len(data)), chunks - 1)) if chunks > 1 else []
    for start, end in zip([0] + cuts, cuts + [len(data)]):
        checker.feed(data[start:end])
    checker.finish()


def with_members(members: list) -> bytes:
    return make_tar(members)


@pytest.mark.parametrize("chunks", [1, 7, 300])
def test_a_genuine_archive_passes_however_it_is_cut(chunks):
    check(GOOD, chunks=chunks)


def test_a_layer_that_is_not_its_diff_id_fails_naming_it():
    tampered = with_members([(name, layer(b"evil") if name.endswith(f"{sha(LAYERS[1])}/layer.tar") else data)
                             for name, data in tar_contents(GOOD)])
    with pytest.raises(ArchiveError, match=rf"layer {sha(LAYERS[1])}/layer.tar has sha256:{sha(layer(b'evil'))}.*diff_ids\[1\]"):
        check(tampered)


def test_another_image_id_fails():
    with pytest.raises(ArchiveError, match=r"no config it holds has the image id sha256:0{64}"):
        check(GOOD, image_id="sha256:" + "0" * 64)


@pytest.mark.parametrize("name, problem", [("../x", "has a '..' component"), ("/x", "is absolute"), ("a/../../x", "has a '..' component")])
def test_names_that_leave_the_archive_fail_at_their_header(name, problem):
    with pytest.raises(ArchiveError, match=f"member '{name}' {problem}"):
        check(with_members([(name, b"x")] + tar_contents(GOOD)))


def test_a_link_out_of_the_archive_fails():
    with pytest.raises(ArchiveError, match="outside the archive"):
        check(with_members(tar_contents(GOOD) + [("link", Link("../../etc/passwd"))]))


def test_a_member_the_manifest_names_twice_in_the_tar_fails():
    contents = tar_contents(GOOD)
    with pytest.raises(ArchiveError, match=f"{sha(LAYERS[0])}/layer.tar appears 2 times"):
        check(with_members(contents + [(f"{sha(LAYERS[0])}/layer.tar", LAYERS[0])]))


def test_a_missing_layer_fails():
    with pytest.raises(ArchiveError, match=f"lacks {sha(LAYERS[0])}/layer.tar, which manifest.json lists"):
        check(with_members([(name, data) for name, data in tar_contents(GOOD) if not name.startswith(sha(LAYERS[0]))]))


def test_a_truncated_stream_fails():
    with pytest.raises(ArchiveError, match="ends inside a member"):
        check(GOOD[:len(GOOD) // 2 + 100])


def test_gzip_layers_match_their_uncompressed_diff_ids_and_blobs_their_names():
    image = OciImage("gz", [gzip.compress(layer(b"a" * 100000), mtime=0)], media_type=GZIP_LAYER)
    manifest = [{"Config": f"blobs/sha256/{sha(image.config)}", "RepoTags": None, "Layers": [f"blobs/sha256/{sha(image.layers[0])}"]}]
    data = oci_archive([image.descriptor()], image.blobs, manifest)
    check(data, "sha256:" + sha(image.config), chunks=50)
    altered = with_members([(name, gzip.compress(layer(b"b"), mtime=0) if name == f"blobs/sha256/{sha(image.layers[0])}" else body)
                            for name, body in tar_contents(data)])
    with pytest.raises(ArchiveError, match="not the digest its name gives"):
        check(altered, "sha256:" + sha(image.config))


def test_long_names_in_pax_headers_are_read():
    folder = "d" * 150
    config = image_config("long", layers=[LAYERS[0]])
    manifest = [{"Config": "c.json", "RepoTags": None, "Layers": [f"{folder}/layer.tar"]}]
    check(make_tar([("c.json", config), (f"{folder}/layer.tar", LAYERS[0]), ("manifest.json", json.dumps(manifest).encode())]),
          "sha256:" + sha(config), chunks=9)


def test_failures_take_the_error_class_asked_for():
    with pytest.raises(SavedImageError):
        check(GOOD, image_id="sha256:" + "0" * 64, error=SavedImageError)


def test_a_checked_stream_raises_at_its_end_and_passes_bytes_unchanged():
    assert checked_stream(io.BytesIO(GOOD), ArchiveCheck(IMAGE_ID, "a.tar")).read() == GOOD
    stream = checked_stream(io.BytesIO(GOOD), ArchiveCheck("sha256:" + "0" * 64, "a.tar"))
    assert len(stream.read(1000)) == 1000
    with pytest.raises(ArchiveError):
        stream.read()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[start:start + size] for start in range(0, len(data), size)]


def checking_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "archive-check"]


@pytest.mark.parametrize("depth", [1, 8])
def test_checked_chunks_pass_every_chunk_unchanged_and_end_once_the_check_passed(depth):
    assert b"".join(checked_chunks(pieces(GOOD, 1000), ArchiveCheck(IMAGE_ID, "a.tar"), depth=depth)) == GOOD
    assert not checking_threads()


def test_checked_chunks_raise_instead_of_ending_when_the_check_fails():
    passed = []
    with pytest.raises(ArchiveError, match="no config it holds has the image id"):
        for chunk in checked_chunks(pieces(GOOD, 1000), ArchiveCheck("sha256:" + "0" * 64, "a.tar")):
            passed.append(chunk)
    assert b"".join(passed) == GOOD  # every byte passed, only the end did not
    assert not checking_threads()


def test_checked_chunks_raise_a_failure_found_on_the_way_before_the_end():
    hostile = with_members([("../x", b"x" * 100)] + tar_contents(GOOD))
    chunks = checked_chunks(pieces(hostile, 512), ArchiveCheck(IMAGE_ID, "a.tar"), depth=1)
    passed = 0
    with pytest.raises(ArchiveError, match="member '../x' has a '..' component"):
        for _chunk in chunks:
            passed += 1
    assert passed < len(pieces(hostile, 512)) - 2
    assert not checking_threads()


def test_checked_chunks_left_unread_stop_their_thread_and_close_their_source():
    closed = []

    def source():
        try:
            yield from pieces(GOOD, 1000)
        finally:
            closed.append(True)

    chunks = checked_chunks(source(), ArchiveCheck(IMAGE_ID, "a.tar"))
    next(chunks)
    assert checking_threads() and not closed
    chunks.close()
    assert not checking_threads() and closed


def test_layout_members_are_kept_and_others_are_not():
    named = {"c.json", "abc/layer.tar"}
    layout = ("manifest.json", "repositories", "abc/json", "abc/VERSION", "c.json", "blobs/sha256/" + "a" * 64)
    assert all(is_layout_member(name, named) for name in layout)
    assert not any(is_layout_member(name, named) for name in ("notes.txt", "other/json", "blobs/sha256/x"))


def test_an_archive_with_unnamed_members_stores_only_what_its_manifest_names(tmp_path):
    source = ArchiveSource(write(tmp_path, "extra.tar", with_members(tar_contents(GOOD) + [("notes.txt", b"not the image")])))
    stored = dict(tar_contents(read_stream(source)))
    assert source.converted and "notes.txt" not in stored and stored[f"{sha(CONFIG)}.json"] == CONFIG


def test_an_archive_with_escaping_members_fails_before_streaming(tmp_path):
    with pytest.raises(ArchiveError, match="member '/x' is absolute"):
        ArchiveSource(write(tmp_path, "evil.tar", with_members(tar_contents(GOOD) + [("/x", b"evil")]))).identify()


def test_a_tampered_archive_fails_at_the_end_of_its_stream(tmp_path):
    tampered = with_members([(name, layer(b"evil") if name.endswith(f"{sha(LAYERS[0])}/layer.tar") else data)
                             for name, data in tar_contents(GOOD)])
    source = ArchiveSource(write(tmp_path, "tampered.tar", tampered))
    assert source.identify().image_id == IMAGE_ID
    with pytest.raises(ArchiveError, match=r"diff_ids\[0\]"):
        read_stream(source)


@pytest.mark.parametrize("kind, words", [("directory", "is a directory"), ("fifo", "is a FIFO (named pipe)"), ("device", "is a character device")])
def test_paths_that_are_not_files_say_what_they_are(tmp_path, kind, words):
    path = {"directory": str(tmp_path), "fifo": str(tmp_path / "fifo"), "device": "/dev/null"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(ArchiveError, match=re.escape(f"{words}, not a regular file")):
        ArchiveSource(path).identify()


# --- the stored image's segments ----------------------------------------------------------------------------

def test_file_segments_follow_the_file_across_blocks():
    manifest = f". {'a' * 32}+10+Asig@1 {'b' * 32}+10 {'c' * 32}+5 0:3:other 3:17:sha256\\072{'e' * 64}.tar\n"
    assert file_segments(manifest, f"sha256:{'e' * 64}.tar") == [(f"{'a' * 32}+10+Asig@1", 3, 7), (f"{'b' * 32}+10", 0, 10)]
    assert file_segments(manifest, "absent.tar") is None


# --- lock files ---------------------------------------------------------------------------------------------

def test_lock_files_are_removed_when_the_run_ends_and_stale_ones_swept(tmp_path):
    stale = tmp_path / ("0" * 32 + ".lock")
    stale.write_text("")
    with image_lock("sha256:" + "1" * 64, lock_dir=str(tmp_path)):
        assert len(list(tmp_path.glob("*.lock"))) == 2
    assert list(tmp_path.glob("*.lock")) == []
    remove_stale_locks(str(tmp_path / "missing"))


# --- a failure after changes ----------------------------------------------------------------------------------

def test_a_failure_after_changes_reports_changed_and_names_them():
    error = ArvadosClientError("creating a link failed: 503")
    note_changes_made(error, ["created collection zzzzz-4zz18-000000000000001 in project zzzzz-j7d0g-000000000000001"])
    result = failure_of(error).as_result()
    assert result["changed"] is True
    assert result["msg"] == ("creating a link failed: 503; before it stopped, this run created collection zzzzz-4zz18-000000000000001 "
                             "in project zzzzz-j7d0g-000000000000001")
    assert "changed" not in failure_of(ArvadosClientError("x")).as_result()
