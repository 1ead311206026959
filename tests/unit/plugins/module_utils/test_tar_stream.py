# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Unit tests of the streams: generated tars and the chunk reader."""

from __future__ import annotations

import tarfile

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils import _tar_stream as tar_stream
from ansible_collections.arvados.cluster.tests.unit.plugins.module_utils.image_builders import make_tar, tar_contents, write


def test_tar_size_counts_exactly_what_tar_chunks_writes(tmp_path):
    source = write(tmp_path, "src.tar", make_tar([("a", b"x" * 700), ("b", b"y" * 512)]))
    with tarfile.open(source) as archive:
        members = [(f"blobs/sha256/{name}", archive.getmember(name)) for name in ("a", "b")]
    pieces = tar_stream.docker_archive_pieces(b'[{"Config": "c"}]', members)
    written = b"".join(tar_stream.tar_chunks(source, pieces))
    assert len(written) == tar_stream.tar_size(pieces)
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
    stream = tar_stream.open_chunk_stream(chunks)
    assert stream.read(4) == b"abcd"
    assert stream.read(100) == b"efghij"
    assert stream.read(1) == b""


def test_chunk_stream_pulls_chunks_only_as_needed():
    chunks = CountingChunks([bytes([n]) * 1000 for n in range(100)])
    stream = tar_stream.open_chunk_stream(chunks)
    stream.read(1500)
    assert chunks.served <= 3


def test_closing_the_chunk_stream_closes_the_chunks_and_calls_back():
    chunks = CountingChunks([b"abc"])
    closed = []
    stream = tar_stream.open_chunk_stream(chunks, on_close=lambda: closed.append(True))
    stream.read(1)
    stream.close()
    assert chunks.closed and closed == [True]
    with pytest.raises(ValueError):
        stream.read(1)
