# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Block cutting, manifest assembly, concurrency and failures of the Keep stream writer, without HTTP."""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
import tracemalloc

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils import _upload
from ansible_collections.arvados.cluster.plugins.module_utils._upload import (
    EMPTY_BLOCK_LOCATOR,
    BlockUploads,
    KEEP_BLOCK_SIZE,
    KeepUploadError,
    escape_manifest_name,
    keep_block_writer,
    one_file_manifest,
    read_block,
    write_stream,
    write_stream_to_keep,
)

BLOCK = 16
SIGNATURE = "+A0123456789abcdef0123456789abcdef01234567@ffffffff"


def signed_locator(block: bytes) -> str:
    return f"{hashlib.md5(block).hexdigest()}+{len(block)}{SIGNATURE}"


class FakeKeep:
    """Records every block it is given and answers as keepstore does, with a signed locator."""

    def __init__(self):
        self.blocks = []
        self._lock = threading.Lock()

    def put_block(self, block: bytes) -> str:
        assert isinstance(block, bytes)
        with self._lock:
            self.blocks.append(block)
        return signed_locator(block)


class ReadOnlyStream:
    """A stream with only `read(n)`, returning at most `most` bytes per call, like a pipe or generator adapter."""

    def __init__(self, payload: bytes, most: int):
        self._payload = io.BytesIO(payload)
        self._most = most

    def read(self, size: int) -> bytes:
        return self._payload.read(min(size, self._most))


class ShortReadintoStream(io.RawIOBase):
    """A raw stream whose `readinto` fills at most `most` bytes per call."""

    def __init__(self, payload: bytes, most: int):
        super().__init__()
        self._payload = io.BytesIO(payload)
        self._most = most

    def readable(self):
        return True

    def readinto(self, buffer):
        with memoryview(buffer) as view:
            return self._payload.readinto(view[:self._most])


def payload_of(size: int) -> bytes:
    return bytes(index * 7 % 251 for index in range(size))


def expected_manifest(payload: bytes, file_name: str, block_size: int = BLOCK) -> str:
    blocks = [payload[start:start + block_size] for start in range(0, len(payload), block_size)]
    locators = " ".join(signed_locator(block) for block in blocks) or EMPTY_BLOCK_LOCATOR
    return f". {locators} 0:{len(payload)}:{escape_manifest_name(file_name)}\n"


def test_keep_block_size_is_arvados_block_size():
    assert KEEP_BLOCK_SIZE == 2 ** 26


@pytest.mark.parametrize("size", [1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 3 * BLOCK + 5])
def test_blocks_are_full_blocks_then_the_rest(size):
    keep = FakeKeep()
    payload = payload_of(size)
    manifest = write_stream(keep.put_block, io.BytesIO(payload), "sha256:ab.tar", block_size=BLOCK)
    assert manifest == expected_manifest(payload, "sha256:ab.tar")
    assert sorted(keep.blocks, key=payload.index) == [payload[start:start + BLOCK] for start in range(0, size, BLOCK)]


def test_empty_stream_gives_the_empty_block_and_no_put():
    keep = FakeKeep()
    manifest = write_stream(keep.put_block, io.BytesIO(b""), "sha256:ab.tar", block_size=BLOCK)
    assert manifest == f". {EMPTY_BLOCK_LOCATOR} 0:0:sha256\\072ab.tar\n"
    assert not keep.blocks


def test_manifest_of_arvados_fixture():
    keep = FakeKeep()
    manifest = write_stream(keep.put_block, io.BytesIO(b"foo"), "foo")
    assert manifest == f". acbd18db4cc2f85cedef654fccc4a4d8+3{SIGNATURE} 0:3:foo\n"


@pytest.mark.parametrize("stream_factory", [
    lambda payload: ReadOnlyStream(payload, most=3),
    lambda payload: ShortReadintoStream(payload, most=5),
    lambda payload: io.BufferedReader(ShortReadintoStream(payload, most=7)),
], ids=["read-only", "short-readinto", "buffered"])
def test_short_reads_still_make_full_blocks(stream_factory):
    keep = FakeKeep()
    payload = payload_of(5 * BLOCK + 3)
    manifest = write_stream(keep.put_block, stream_factory(payload), "image.tar", block_size=BLOCK)
    assert manifest == expected_manifest(payload, "image.tar")


def test_reads_are_capped_so_readers_never_copy_a_whole_block(monkeypatch):
    monkeypatch.setattr(_upload, "READ_CHUNK_SIZE", 4)
    requested = []

    class RecordingStream(ReadOnlyStream):
        def read(self, size):
            requested.append(size)
            return super().read(size)

    payload = payload_of(2 * BLOCK)
    manifest = write_stream(FakeKeep().put_block, RecordingStream(payload, most=BLOCK), "x", block_size=BLOCK)
    assert manifest == expected_manifest(payload, "x")
    assert max(requested) == 4


@pytest.mark.parametrize("name, escaped", [
    ("sha256:0123abcd.tar", "sha256\\0720123abcd.tar"),
    ("a b", "a\\040b"),
    ("back\\slash", "back\\134slash"),
    ("tab\there\nnl", "tab\\011here\\012nl"),
    ("caf\u00e9.tar", "caf\u00e9.tar"),
])
def test_file_names_are_escaped_as_arvados_does(name, escaped):
    assert escape_manifest_name(name) == escaped
    assert one_file_manifest(["loc+1"], 1, name) == f". loc+1 0:1:{escaped}\n"


@pytest.mark.parametrize("name", ["", ".", "..", "dir/image.tar"])
def test_names_that_are_not_top_level_files_are_refused(name):
    with pytest.raises(ValueError):
        write_stream(FakeKeep().put_block, io.BytesIO(b"x"), name)


def test_at_least_one_block_in_flight():
    with pytest.raises(ValueError):
        write_stream(FakeKeep().put_block, io.BytesIO(b"x"), "x", blocks_in_flight=0)


def test_locators_keep_stream_order_when_puts_finish_out_of_order():
    payload = payload_of(4 * BLOCK)

    def put_block(block):
        # Earlier blocks take longer, so they finish last.
        time.sleep(0.05 * (4 - payload.index(block) // BLOCK))
        return signed_locator(block)

    manifest = write_stream(put_block, io.BytesIO(payload), "x", blocks_in_flight=4, block_size=BLOCK)
    assert manifest == expected_manifest(payload, "x")


@pytest.mark.parametrize("blocks_in_flight", [1, 2, 3])
def test_puts_in_flight_never_exceed_the_limit_and_reach_it(blocks_in_flight):
    running = []
    peak = []
    lock = threading.Lock()

    def put_block(block):
        with lock:
            running.append(block)
            peak.append(len(running))
        time.sleep(0.02)
        with lock:
            running.remove(block)
        return signed_locator(block)

    payload = payload_of(8 * BLOCK)
    write_stream(put_block, io.BytesIO(payload), "x", blocks_in_flight=blocks_in_flight, block_size=BLOCK)
    assert max(peak) == blocks_in_flight


@pytest.mark.parametrize("blocks_in_flight", [1, 2, 3])
def test_blocks_held_from_read_to_written_never_exceed_the_limit(blocks_in_flight):
    payload = payload_of(8 * BLOCK)
    written = []
    held_at_block_start = []

    class CountingStream(io.BytesIO):
        def readinto(self, buffer):
            if self.tell() % BLOCK == 0 and self.tell() < len(payload):
                held_at_block_start.append(self.tell() // BLOCK + 1 - len(written))
            return super().readinto(buffer)

    def put_block(block):
        time.sleep(0.02)
        written.append(block)
        return signed_locator(block)

    write_stream(put_block, CountingStream(payload), "x", blocks_in_flight=blocks_in_flight, block_size=BLOCK)
    assert max(held_at_block_start) == blocks_in_flight


def test_next_block_is_read_while_puts_run():
    reads_during_put = []
    put_running = threading.Event()

    class WatchedStream(io.BytesIO):
        def readinto(self, buffer):
            reads_during_put.append(put_running.is_set())
            return super().readinto(buffer)

    def put_block(block):
        put_running.set()
        time.sleep(0.05)
        return signed_locator(block)

    write_stream(put_block, WatchedStream(payload_of(3 * BLOCK)), "x", blocks_in_flight=2, block_size=BLOCK)
    assert any(reads_during_put)


def test_failed_put_raises_with_bytes_written_and_stops_reading():
    payload = payload_of(10 * BLOCK)
    stream = io.BytesIO(payload)
    put_calls = []

    def put_block(block):
        put_calls.append(block)
        if payload.index(block) == 2 * BLOCK:
            raise OSError("keepstore said 500")
        return signed_locator(block)

    with pytest.raises(KeepUploadError) as raised:
        write_stream(put_block, stream, "sha256:ab.tar", blocks_in_flight=1, block_size=BLOCK)
    assert raised.value.bytes_written == 2 * BLOCK
    message = str(raised.value)
    assert f"{2 * BLOCK} bytes had been written" in message
    assert "block 3" in message and "keepstore said 500" in message
    assert isinstance(raised.value.__cause__, OSError)
    # Nothing is read or written after the failure.
    assert stream.tell() == 3 * BLOCK
    assert len(put_calls) == 3


def test_any_exception_ending_a_put_is_reported_not_waited_for():
    def put_block(block):
        raise SystemExit("worker ended")

    with pytest.raises(KeepUploadError, match="worker ended") as raised:
        write_stream(put_block, io.BytesIO(payload_of(2 * BLOCK)), "x", block_size=BLOCK)
    assert raised.value.bytes_written == 0


def test_failure_is_raised_without_waiting_for_other_puts():
    release_first = threading.Event()
    payload = payload_of(3 * BLOCK)

    def put_block(block):
        if payload.index(block) == 0:
            release_first.wait(30)
            return signed_locator(block)
        raise OSError("connection reset")

    started = time.monotonic()
    try:
        with pytest.raises(KeepUploadError) as raised:
            write_stream(put_block, io.BytesIO(payload), "x", blocks_in_flight=2, block_size=BLOCK)
    finally:
        release_first.set()
    assert time.monotonic() - started < 10
    assert raised.value.bytes_written == 0


def test_reader_errors_propagate_and_stop_the_upload():
    keep = FakeKeep()

    class BrokenStream(io.RawIOBase):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def readinto(self, buffer):
            self.calls += 1
            if self.calls > 2:
                raise OSError("docker save ended early")
            buffer[:BLOCK] = payload_of(BLOCK)
            return BLOCK

    with pytest.raises(OSError, match="docker save ended early"):
        write_stream(keep.put_block, BrokenStream(), "x", block_size=BLOCK)
    assert len(keep.blocks) <= 2


def test_a_written_block_nobody_holds_is_given_back_once_for_the_next_read():
    uploads = BlockUploads(signed_locator, 1, "x")
    uploads.start(payload_of(BLOCK))
    uploads.locators()
    assert uploads.take_spare_block(BLOCK + 1) is None  # another size: a short last block is never read into
    uploads.start(payload_of(BLOCK))
    uploads.locators()
    assert uploads.take_spare_block(BLOCK) == payload_of(BLOCK)
    assert uploads.take_spare_block(BLOCK) is None


def test_a_written_block_someone_still_holds_is_not_read_into():
    keep = FakeKeep()
    uploads = BlockUploads(keep.put_block, 1, "x")
    uploads.start(payload_of(BLOCK))
    uploads.locators()
    assert uploads.take_spare_block(BLOCK) is None
    assert keep.blocks == [payload_of(BLOCK)]


@pytest.mark.parametrize("blocks_in_flight", [1, 2, 3])
@pytest.mark.parametrize("keeps_blocks", [False, True])
def test_blocks_read_into_written_blocks_make_the_same_manifest(blocks_in_flight, keeps_blocks):
    """Whether put_block lets go of its blocks (they are read into again) or keeps them (they are left alone)."""
    payload = random.Random(7).randbytes(20 * BLOCK + 3)
    kept = []

    def put_block(block):
        time.sleep(0.001)
        if keeps_blocks:
            kept.append(block)
        return signed_locator(block)

    manifest = write_stream(put_block, io.BytesIO(payload), "x", blocks_in_flight=blocks_in_flight, block_size=BLOCK)
    assert manifest == expected_manifest(payload, "x")
    if keeps_blocks:
        assert sorted(kept) == sorted(payload[start:start + BLOCK] for start in range(0, len(payload), BLOCK))


def test_a_block_is_held_once_while_read():
    block_size = 8 * 1024 * 1024
    stream = io.BytesIO(payload_of(1024) * (block_size // 1024))
    tracemalloc.start()
    try:
        block = read_block(stream, block_size)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(block) == block_size
    assert peak < block_size * 1.05


def test_a_short_last_block_is_held_once():
    block_size = 8 * 1024 * 1024
    stream = ReadOnlyStream(b"z" * (block_size * 3 // 4), most=64 * 1024)
    tracemalloc.start()
    try:
        block = read_block(stream, block_size)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert block == b"z" * (block_size * 3 // 4)
    # The buffer is allocated at full block size, then shrunk in place.
    assert peak < block_size * 1.05


class FakeKeepClient:
    """Stands for arvados.keep.KeepClient: records put()'s keyword arguments."""

    def __init__(self, discovery_document):
        self.api_client = type("ApiClient", (), {"_rootDesc": discovery_document})()
        self.put_options = []

    def put(self, data, **options):
        self.put_options.append(options)
        return signed_locator(data)


def test_copies_default_to_the_clusters_replication_as_arv_put():
    keep_client = FakeKeepClient({"defaultCollectionReplication": 3})
    keep_block_writer(keep_client)(b"abc")
    assert keep_client.put_options == [{"copies": 3}]


def test_copies_default_to_two_without_a_cluster_setting():
    keep_client = FakeKeepClient({})
    keep_block_writer(keep_client)(b"abc")
    assert keep_client.put_options == [{"copies": 2}]


def test_given_copies_classes_and_retries_reach_every_put():
    keep_client = FakeKeepClient({"defaultCollectionReplication": 3})
    payload = payload_of(3 * BLOCK)
    manifest = write_stream(
        keep_block_writer(keep_client, copies=1, storage_classes=("archive",), num_retries=0),
        io.BytesIO(payload), "x", block_size=BLOCK,
    )
    assert manifest == expected_manifest(payload, "x")
    assert keep_client.put_options == [{"copies": 1, "classes": ["archive"], "num_retries": 0}] * 3


def test_write_stream_to_keep_uses_the_keep_client():
    keep_client = FakeKeepClient({})
    manifest = write_stream_to_keep(keep_client, io.BytesIO(b"foo"), "sha256:ab.tar", copies=1)
    assert manifest == f". acbd18db4cc2f85cedef654fccc4a4d8+3{SIGNATURE} 0:3:sha256\\072ab.tar\n"
    assert keep_client.put_options == [{"copies": 1}]
