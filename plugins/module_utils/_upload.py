# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""Stream bytes into Keep as the blocks arv-put writes, and return the one-file manifest.

The Keep client is passed in, so this file needs no Arvados SDK to import.

Memory: a block is read straight into the buffer of the `bytes` object that `KeepClient.put` is
given (no second copy), and a block counts against `blocks_in_flight` from the start of its read to
the end of its write, so the peak is `blocks_in_flight` blocks whatever the stream's length. A block
whose write ended, and that nothing else still refers to, is read into again for a later block: its
pages are already mapped, where a new 64 MiB buffer costs ~16,000 page faults, each zeroing a page.
"""

from __future__ import annotations

import functools
import io
import re
import sys
import threading
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import KeepUploadError
from ansible_collections.arvados.cluster.plugins.module_utils._resume_cache import ResumeCache, resuming_writer

# arvados.config.KEEP_BLOCK_SIZE: arv-put cuts a file into blocks of exactly this size, the last shorter.
KEEP_BLOCK_SIZE = 64 * 1024 * 1024
# The locator arv-put writes for an empty file; it is never PUT and needs no signature.
EMPTY_BLOCK_LOCATOR = "d41d8cd98f00b204e9800998ecf8427e+0"
# Reads are capped so that a reader which buffers or copies internally only ever does so for this much.
READ_CHUNK_SIZE = 1024 * 1024
# What arv-put asks for when neither the caller nor the discovery document says (arvados/collection.py).
DEFAULT_COPIES = 2

_MANIFEST_ESCAPED = re.compile(r"[\\:\000-\040]")

PutBlock = t.Callable[[bytes], str]


def write_stream_to_keep(
    keep_client: t.Any,
    reader: t.Any,
    file_name: str,
    copies: int | None = None,
    storage_classes: list[str] | None = None,
    blocks_in_flight: int = 2,
    num_retries: int | None = None,
    resume: ResumeCache | None = None,
) -> str:
    """Write everything `reader` yields to Keep as one file and return the signed manifest text.

    `keep_client` is an `arvados.keep.KeepClient` (`api.keep`); `reader` is any blocking binary
    stream with `read(n)` (and, better, `readinto`). `copies` defaults to the cluster's
    `defaultCollectionReplication`, `storage_classes` to the cluster's default classes and
    `num_retries` to the Keep client's own, all as arv-put does. With `resume`, a block that an
    earlier, interrupted upload wrote is not sent again once Keep confirms its cached locator.
    """
    put_block = keep_block_writer(keep_client, copies=copies, storage_classes=storage_classes, num_retries=num_retries)
    if resume is not None:
        put_block = resuming_writer(put_block, keep_client, resume)
    return write_stream(put_block, reader, file_name, blocks_in_flight=blocks_in_flight)


def keep_block_writer(
    keep_client: t.Any,
    copies: int | None = None,
    storage_classes: list[str] | None = None,
    num_retries: int | None = None,
) -> PutBlock:
    """`KeepClient.put` bound to the replication, storage classes and retries to write every block with."""
    put_options: dict[str, t.Any] = {"copies": copies if copies is not None else cluster_default_copies(keep_client)}
    if storage_classes:
        put_options["classes"] = list(storage_classes)
    if num_retries is not None:
        put_options["num_retries"] = num_retries
    return functools.partial(keep_client.put, **put_options)


def cluster_default_copies(keep_client: t.Any) -> int:
    """The replication arv-put asks for by default: the discovery document's `defaultCollectionReplication`."""
    api_client = getattr(keep_client, "api_client", None)
    discovery_document = getattr(api_client, "_rootDesc", None) or {}
    return int(discovery_document.get("defaultCollectionReplication", DEFAULT_COPIES))


def write_stream(
    put_block: PutBlock,
    reader: t.Any,
    file_name: str,
    blocks_in_flight: int = 2,
    block_size: int = KEEP_BLOCK_SIZE,
) -> str:
    """Cut `reader` into blocks, write each with `put_block` (bytes -> locator) and return the manifest text.

    At most `blocks_in_flight` blocks are held at once, each from the start of its read to the end of
    its write: the next block is read while up to `blocks_in_flight - 1` are being written in worker
    threads, and its write starts as soon as it is read. The first failing write raises
    `KeepUploadError` at once: nothing more is read or written.
    """
    check_file_name(file_name)
    if blocks_in_flight < 1:
        raise ValueError(f"blocks_in_flight must be at least 1, not {blocks_in_flight}")
    uploads = BlockUploads(put_block, blocks_in_flight, file_name)
    stream_size = 0
    while True:
        uploads.wait_for_free_slot()
        block = read_block(reader, block_size, uploads.take_spare_block)
        if not block:
            break
        stream_size += len(block)
        uploads.start(block)
        # The upload thread now holds the only reference, so the block is freed as soon as its PUT ends.
        del block
    return one_file_manifest(uploads.locators(), stream_size, file_name)


def check_file_name(file_name: str) -> None:
    """A manifest file name for the root stream: not empty, no directory part."""
    if not file_name or "/" in file_name or file_name in (".", ".."):
        raise ValueError(f"not a file name for a collection's top level: {file_name!r}")


def one_file_manifest(locators: list[str], file_size: int, file_name: str) -> str:
    """The manifest of one file made of `locators` in order, as arv-put writes it."""
    block_list = " ".join(locators) if locators else EMPTY_BLOCK_LOCATOR
    return f". {block_list} 0:{file_size}:{escape_manifest_name(file_name)}\n"


def escape_manifest_name(name: str) -> str:
    """Escape a file name as Arvados manifests do: backslash, colon, space and control bytes as octal."""
    return _MANIFEST_ESCAPED.sub(lambda match: f"\\{ord(match.group(0)):03o}", name)


def read_block(reader: t.Any, block_size: int, take_spare: t.Callable[[int], bytes | None] = lambda _size: None) -> bytes:
    """Read `block_size` bytes (fewer only at the end of the stream) into one `bytes` object.

    The bytes are read straight into the buffer of the `bytes` that is returned: `KeepClient.put`
    takes only `bytes`, and `bytes(bytearray)` would hold a block twice while copying. `take_spare`
    may give a written block of `block_size` bytes that nothing else refers to, to read into again.
    """
    # bytes(n) is calloc'ed, so untouched pages cost nothing; BytesIO adopts it without copying,
    # getbuffer() writes into it in place and getvalue() hands the same object back (CPython 3.5+).
    # BytesIO copies instead of writing in place whenever anything else still refers to the object
    # it adopted, so a spare block is only ever overwritten when it is nobody's any more.
    block_buffer = io.BytesIO(take_spare(block_size) or bytes(block_size))
    with block_buffer.getbuffer() as block_view:
        block_length = fill_view(reader, block_view)
    block_buffer.truncate(block_length)
    block = block_buffer.getvalue()
    block_buffer.close()
    return block


def fill_view(reader: t.Any, view: memoryview) -> int:
    """Fill `view` from `reader` until it is full or the stream ends; return how many bytes were read."""
    readinto = getattr(reader, "readinto", None)
    filled = 0
    while filled < len(view):
        with view[filled:filled + READ_CHUNK_SIZE] as window:
            count = readinto(window) if readinto else copy_read_into(reader, window)
        if not count:
            break
        filled += count
    return filled


def copy_read_into(reader: t.Any, window: memoryview) -> int:
    """`readinto` for readers that only have `read(n)`."""
    chunk = reader.read(len(window))
    window[:len(chunk)] = chunk
    return len(chunk)


class BlockUploads:
    """Block PUTs running in worker threads, at most `limit` at once, and their locators in stream order."""

    def __init__(self, put_block: PutBlock, limit: int, file_name: str) -> None:
        self._put_block = put_block
        self._limit = limit
        self._file_name = file_name
        self._changed = threading.Condition()
        self._running = 0
        self._locators: list[str | None] = []
        self._block_offsets: list[int] = []
        self._bytes_submitted = 0
        self._bytes_written = 0
        self._failure: KeepUploadError | None = None
        # The block of the last write that ended, for the next read; at most one, so still at most `limit` blocks.
        self._spare: bytes | None = None

    def wait_for_free_slot(self) -> None:
        """Wait until fewer than `limit` writes are running; raise if one has failed."""
        with self._changed:
            self._changed.wait_for(lambda: self._failure is not None or self._running < self._limit)
            self._raise_failure()

    def start(self, block: bytes) -> None:
        """Start writing `block` in a worker thread."""
        with self._changed:
            self._running += 1
            block_index = len(self._locators)
            self._locators.append(None)
            self._block_offsets.append(self._bytes_submitted)
            self._bytes_submitted += len(block)
        # Daemon threads: after a failure, the SDK's retries of blocks that no longer matter must not
        # keep the process alive. The block goes in a list the thread empties: no frame keeps it.
        worker = threading.Thread(target=self._write_block, args=(block_index, [block]), daemon=True)
        worker.start()

    def take_spare_block(self, size: int) -> bytes | None:
        """The block of a write that ended, when it has `size` bytes and nothing but this call refers to it."""
        with self._changed:
            spare, self._spare = self._spare, None
        # Two references: `spare` and getrefcount's argument; any other means someone still holds it.
        return spare if spare is not None and len(spare) == size and sys.getrefcount(spare) == 2 else None

    def locators(self) -> list[str]:
        """Wait for every write to end and return the locators in stream order; raise if one failed."""
        with self._changed:
            self._changed.wait_for(lambda: self._failure is not None or self._running == 0)
            self._raise_failure()
            return [locator for locator in self._locators if locator is not None]

    def _write_block(self, block_index: int, holder: list[bytes]) -> None:
        block_length = len(holder[0])
        try:
            locator = self._put_block(holder[0])
        # Whatever ends the PUT must reach the reading thread, or it would wait for this one forever.
        except BaseException as error:
            holder.clear()
            self._record_failure(block_index, block_length, error)
        else:
            self._record_locator(block_index, block_length, locator, holder)

    def _record_locator(self, block_index: int, block_length: int, locator: str, holder: list[bytes]) -> None:
        with self._changed:
            self._spare = holder.pop()
            self._locators[block_index] = locator
            self._bytes_written += block_length
            self._running -= 1
            self._changed.notify_all()

    def _record_failure(self, block_index: int, block_length: int, error: BaseException) -> None:
        with self._changed:
            self._running -= 1
            if self._failure is None:
                offset = self._block_offsets[block_index]
                failure = KeepUploadError(
                    f"writing {self._file_name} to Keep failed at block {block_index + 1} (bytes {offset} to {offset + block_length - 1}): "
                    f"{error}; {self._bytes_written} bytes had been written to Keep, no manifest was made",
                    bytes_written=self._bytes_written,
                )
                failure.__cause__ = error
                self._failure = failure
            self._changed.notify_all()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
