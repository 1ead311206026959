# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Streams with bounded memory: a file-like view of byte chunks, tar archives generated member by member, and a tar
stream parsed as it passes (TarWalk).

A generated tar is a list of TarPiece: each member's header and either its bytes or where to copy them from in a
source file, so its size is known before a byte is read. Pure code, apart from reading the source file.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import tarfile
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, CollectionError

READ_CHUNK_SIZE = 1024 * 1024
# The buffer of a chunk stream serves small reads only: a read bigger than it (a Keep block's 1 MiB windows) is copied
# from the chunk straight into the caller's buffer, not through this one first.
SMALL_READ_BUFFER = 64 * 1024
TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)
# Extended headers (pax, GNU long names) are small; a bigger one means a damaged archive.
EXTENDED_HEADER_LIMIT = 1024 * 1024
_EXTENDED_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class _ChunkReader(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks; it holds at most one chunk at a time."""

    def __init__(self, chunks: t.Iterable[bytes], on_close: t.Callable[[], None] | None = None) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._on_close = on_close
        self._released = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        if not self._pending:
            self._pending = memoryview(self._next_chunk())
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _next_chunk(self) -> bytes:
        for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    def close(self) -> None:
        try:
            if not self._released:
                self._released = True
                self._pending = memoryview(b"")
                self._release_source()
        finally:
            super().close()

    def _release_source(self) -> None:
        close_chunks = getattr(self._chunks, "close", None)
        if close_chunks is not None:
            close_chunks()
        if self._on_close is not None:
            self._on_close()


def open_chunk_stream(chunks: t.Iterable[bytes], on_close: t.Callable[[], None] | None = None) -> io.BufferedReader:
    """A buffered binary reader over `chunks`: `read(n)` returns n bytes until the end; memory stays bounded."""
    return io.BufferedReader(_ChunkReader(chunks, on_close), buffer_size=SMALL_READ_BUFFER)


def tar_header(name: str, size: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = 0 if directory else size
    # A fixed time makes converting the same image always give the same bytes (and the same Keep blocks).
    info.mtime = 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


@dataclasses.dataclass(frozen=True)
class TarPiece:
    """One member of a generated tar: its header, then either `data` or `length` bytes of the source file."""

    header: bytes
    data: bytes = b""
    source_offset: int | None = None
    length: int = 0

    @property
    def data_size(self) -> int:
        return self.length if self.source_offset is not None else len(self.data)

    @property
    def size(self) -> int:
        return len(self.header) + self.data_size + len(tar_padding(self.data_size))


def docker_archive_pieces(manifest_json: bytes, members: list[tuple[str, tarfile.TarInfo]]) -> list[TarPiece]:
    """A docker-archive: `manifest.json` first (so a streaming reader learns the image early), the folders,
    then each (name, source member) copied from the source archive."""
    pieces = [TarPiece(tar_header("manifest.json", len(manifest_json)), data=manifest_json)]
    folders = sorted({posixpath.dirname(name) for name, _member in members} - {""})
    for folder in _with_parent_folders(folders):
        pieces.append(TarPiece(tar_header(folder, 0, directory=True)))
    for name, member in members:
        pieces.append(TarPiece(tar_header(name, member.size), source_offset=member.offset_data, length=member.size))
    return pieces


def _with_parent_folders(folders: list[str]) -> list[str]:
    every = set()
    for folder in folders:
        while folder:
            every.add(folder)
            folder = posixpath.dirname(folder)
    return sorted(every)


def tar_size(pieces: list[TarPiece]) -> int:
    return sum(piece.size for piece in pieces) + len(TAR_END)


def tar_chunks(source_path: str, pieces: list[TarPiece]) -> t.Iterator[bytes]:
    """The bytes of the tar `pieces` describe, reading copied members from `source_path` in chunks."""
    with open(source_path, "rb") as source:
        for piece in pieces:
            yield piece.header
            if piece.source_offset is None:
                yield piece.data
            else:
                yield from file_range_chunks(source, piece.source_offset, piece.length, source_path)
            yield tar_padding(piece.data_size)
    yield TAR_END


def file_range_chunks(source: t.BinaryIO, offset: int, length: int, where: str) -> t.Iterator[bytes]:
    """`length` bytes of `source` from `offset`, a chunk at a time; ArchiveError when the file ends before."""
    source.seek(offset)
    remaining = length
    while remaining:
        chunk = source.read(min(remaining, READ_CHUNK_SIZE))
        if not chunk:
            raise ArchiveError(f"{where} ended while being read (was it truncated or replaced meanwhile?); save it again")
        remaining -= len(chunk)
        yield chunk


# ---------------------------------------------------------------------------------------------------------
# A tar stream parsed as it passes.
# ---------------------------------------------------------------------------------------------------------

class TarWalk:
    """A tar stream parsed as it is fed: headers (with pax and GNU long names), then each member's data."""

    def __init__(self, where: str, error: t.Type[CollectionError]) -> None:
        self.where = where
        self.error = error
        self.offset = 0
        self.ended = False
        self._header = bytearray()
        self._header_start = 0
        self._remaining = 0
        self._padding = 0
        self._extended: tuple[bytes, bytearray] | None = None
        self._overrides: dict[str, str] = {}

    def feed(self, chunk: t.Any) -> None:
        view = memoryview(chunk).cast("B")
        while view:
            used = self._step(view)
            self.offset += used
            view = view[used:]

    def _step(self, view: memoryview) -> int:
        if self.ended:
            return len(view)
        if self._remaining:
            used = min(self._remaining, len(view))
            self._data(view[:used])
            self._remaining -= used
            if not self._remaining:
                self._member_end()
            return used
        if self._padding:
            used = min(self._padding, len(view))
            self._padding -= used
            return used
        if not self._header:
            self._header_start = self.offset
        used = min(tarfile.BLOCKSIZE - len(self._header), len(view))
        self._header += view[:used]
        if len(self._header) == tarfile.BLOCKSIZE:
            block = bytes(self._header)
            self._header.clear()
            self._on_header(block)
        return used

    def _on_header(self, block: bytes) -> None:
        if block.count(0) == tarfile.BLOCKSIZE:
            self.ended = True
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise self.error(f"{self.where}: no readable tar header at byte {self._header_start} ({exc}); "
                             "the archive is damaged, save it again") from None
        if info.type in _EXTENDED_TYPES:
            if info.size > EXTENDED_HEADER_LIMIT:
                raise self.error(f"{self.where}: an extended tar header of {info.size} bytes; the archive is damaged")
            self._extended = (info.type, bytearray())
        else:
            info = self._with_overrides(info)
            self.member_start(info)
        self._remaining, self._padding = info.size, -info.size % tarfile.BLOCKSIZE
        if not info.size:
            self._member_end()

    def _with_overrides(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        overrides, self._overrides = self._overrides, {}
        info.name = overrides.get("path", info.name)
        info.linkname = overrides.get("linkpath", info.linkname)
        if "size" in overrides:
            info.size = int(overrides["size"])
        return info

    def _data(self, chunk: memoryview) -> None:
        if self._extended is not None:
            self._extended[1].extend(chunk)
        else:
            self.member_data(chunk)

    def _member_end(self) -> None:
        if self._extended is None:
            self.member_end()
            return
        kind, data = self._extended
        self._extended = None
        if kind == tarfile.XHDTYPE:
            self._overrides.update(self._pax_records(bytes(data)))
        elif kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            key = "path" if kind == tarfile.GNUTYPE_LONGNAME else "linkpath"
            self._overrides[key] = bytes(data).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def _pax_records(self, data: bytes) -> dict[str, str]:
        """`<length> <key>=<value>\\n` records (POSIX pax)."""
        records, position = {}, 0
        try:
            while position < len(data) and data[position:position + 1] != b"\0":
                length = int(data[position:data.index(b" ", position)])
                key, _sep, value = data[data.index(b" ", position) + 1:position + length - 1].partition(b"=")
                records[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
                position += length
        except ValueError:
            raise self.error(f"{self.where}: a damaged pax header before byte {self.offset}; the archive is damaged") from None
        return records

    def unfinished(self) -> bool:
        return bool(self._remaining or self._header or self._extended is not None)

    def member_start(self, info: tarfile.TarInfo) -> None:
        raise NotImplementedError

    def member_data(self, chunk: memoryview) -> None:
        raise NotImplementedError

    def member_end(self) -> None:
        raise NotImplementedError
