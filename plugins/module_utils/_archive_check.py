# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Check a docker-archive as `docker load` would, while it streams: that it loads as the image it claims to be.

`ArchiveCheck` is fed the bytes of the tar stored in Keep, chunk by chunk, and parses it as it passes: every member's
sha256 (and for a gzip member, the sha256 of what it inflates to), small JSON members kept (manifest.json, configs),
nothing else held. `finish()` then checks: the config `manifest.json` names has the image id as its digest; each
layer's digest is its `diff_ids` entry; every member the manifest names is there once; a blob's digest is its name.
Names that leave the archive (absolute, `..`) fail as soon as their header passes. Pure code.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import posixpath
import queue
import re
import tarfile
import threading
import typing as t
import zlib

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, CollectionError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import same_image
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import (
    BLOB_DIR,
    METADATA_SIZE_LIMIT,
    config_object,
    parse_docker_manifest,
)
from ansible_collections.arvados.cluster.plugins.module_utils._tar_stream import TarWalk

# What the small JSON members kept for the final checks may take in all.
KEPT_JSON_LIMIT = 64 * 1024 * 1024
INFLATE_CHUNK = 1024 * 1024
# Chunks handed to the checking thread and not yet checked, at most (each at most a read's 1 MiB).
CHECK_QUEUE_CHUNKS = 8
# Members of a docker-archive besides those its manifest names: they are part of the layout, `docker load` reads them.
LAYOUT_FILES = frozenset({"manifest.json", "repositories", "index.json", "oci-layout"})
LAYER_DIRECTORY_FILES = frozenset({"VERSION", "json", "layer.tar"})
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")

ErrorClass = t.Type[CollectionError]


# ---------------------------------------------------------------------------------------------------------
# Member names.
# ---------------------------------------------------------------------------------------------------------

def name_problem(name: str) -> str | None:
    """Why `name` leaves the archive's root when extracted, or None."""
    if name.startswith("/"):
        return "is absolute"
    if ".." in name.split("/"):
        return "has a '..' component"
    return None


def link_problem(name: str, member: tarfile.TarInfo) -> str | None:
    """Why a link member points outside the archive, or None."""
    if not (member.issym() or member.islnk()):
        return None
    target = link_target(name, member)
    return f"links to {member.linkname!r}, outside the archive" if target.startswith("/") or target.split("/")[0] == ".." else None


def link_target(name: str, member: tarfile.TarInfo) -> str:
    """The member a link names: a symlink relative to its folder, a hard link from the root."""
    base = posixpath.dirname(name) if member.issym() else ""
    return posixpath.normpath(posixpath.join(base, member.linkname))


def check_member_name(name: str, member: tarfile.TarInfo, where: str, error: ErrorClass = ArchiveError) -> str:
    """`name` as the archive means it (`./a/` is `a`); the error when it, or the link it is, leaves the archive."""
    problem = name_problem(name) or link_problem(posixpath.normpath(name), member)
    if problem:
        raise error(f"{where}: member {name!r} {problem}; `docker load` refuses an archive whose members leave it: "
                    "the archive is damaged or hostile, save the image again")
    return posixpath.normpath(name)


def is_layout_member(name: str, named: t.AbstractSet[str]) -> bool:
    """Whether `name` belongs in a docker-archive of one image whose manifest names `named` (config, layers)."""
    if name in LAYOUT_FILES or name in named:
        return True
    folder, _sep, base = name.rpartition("/")
    if base in LAYER_DIRECTORY_FILES and any(posixpath.dirname(layer) == folder for layer in named):
        return True
    return folder == BLOB_DIR.rstrip("/") and bool(_HEX_DIGEST.fullmatch(base))


# ---------------------------------------------------------------------------------------------------------
# One member's digests.
# ---------------------------------------------------------------------------------------------------------

class _MemberDigest:
    """The sha256 of a member's bytes, of what they inflate to when they are gzip, and the bytes of small JSON."""

    def __init__(self, size: int, room: int) -> None:
        self.raw = hashlib.sha256()
        self.inflated: t.Any = None
        self._inflater: t.Any = None
        self.kept: bytearray | None = None
        self._room = room if size <= min(room, METADATA_SIZE_LIMIT) else 0
        self._started = False

    def update(self, chunk: memoryview) -> None:
        if not self._started:
            self._start(bytes(chunk[:1]))
        self.raw.update(chunk)
        if self.kept is not None:
            self.kept += chunk
        if self._inflater is not None:
            self._inflate(chunk)

    def _start(self, first: bytes) -> None:
        self._started = True
        if first in (b"{", b"[") and self._room:
            self.kept = bytearray()
        elif first == b"\x1f":
            self.inflated, self._inflater = hashlib.sha256(), zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _inflate(self, chunk: memoryview) -> None:
        """Inflate on the side, at most INFLATE_CHUNK bytes at a time, however well the layer compresses."""
        data: t.Any = chunk
        try:
            while data:
                self.inflated.update(self._inflater.decompress(data, INFLATE_CHUNK))
                data = self._inflater.unconsumed_tail
                if self._inflater.eof:  # a gzip file may hold several gzip members in a row
                    data = self._inflater.unused_data + data
                    self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error:
            self.inflated = self._inflater = None

    def digests(self) -> tuple[str, str | None]:
        return self.raw.hexdigest(), self.inflated.hexdigest() if self.inflated is not None else None


# ---------------------------------------------------------------------------------------------------------
# The check.
# ---------------------------------------------------------------------------------------------------------

class ArchiveCheck(TarWalk):
    """Checks the docker-archive fed to it against `image_id` as `docker load` would; failures raise `error`.

    `where` names the archive in messages (a path, the daemon's save stream of an image, a collection).
    """

    def __init__(self, image_id: str, where: str, error: ErrorClass = ArchiveError) -> None:
        super().__init__(where, error)
        self.image_id = image_id
        self.digests: dict[str, _MemberDigest] = {}
        self.links: dict[str, str] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self._member: tuple[str, _MemberDigest] | None = None
        self._room = KEPT_JSON_LIMIT

    def member_start(self, info: tarfile.TarInfo) -> None:
        name = check_member_name(info.name, info, self.where, self.error)
        self.counts[name] += 1
        if info.isreg():
            self._member = (name, _MemberDigest(info.size, self._room))
            self.digests[name] = self._member[1]
        elif info.issym() or info.islnk():
            self.links[name] = link_target(name, info)

    def member_data(self, chunk: memoryview) -> None:
        if self._member is not None:
            self._member[1].update(chunk)

    def member_end(self) -> None:
        if self._member is None:
            return
        name, digest = self._member
        self._member = None
        if digest.kept is not None:
            self._room -= len(digest.kept)
        folder, _sep, base = name.rpartition("/")
        actual = digest.digests()[0]
        if folder == BLOB_DIR.rstrip("/") and _HEX_DIGEST.fullmatch(base) and actual != base:
            raise self.error(f"{self.where}: blob {name} has sha256:{actual}, not the digest its name gives; the blob was altered, "
                             "`docker load` would refuse it")

    def finish(self) -> None:
        """The checks that need the whole archive: the image id, each layer against its `diff_ids` entry."""
        if self.unfinished():
            raise self.error(f"{self.where} ends inside a member at byte {self.offset}; the archive is truncated, save it again")
        entry, config_name = self._entry()
        diff_ids = self._diff_ids(config_name)
        layers = entry["Layers"]
        if len(layers) != len(diff_ids):
            raise self.error(f"{self.where}: manifest.json lists {len(layers)} layers, but the config's rootfs has {len(diff_ids)} "
                             "diff_ids; the archive is damaged")
        for position, (layer, diff_id) in enumerate(zip(layers, diff_ids)):
            self._check_layer(position, layer, diff_id)
        for name in ["manifest.json", entry["Config"], *layers]:
            self._check_once(name)

    def _entry(self) -> tuple[dict, str]:
        """The manifest entry whose config digest is the image id, and the member holding that config."""
        manifest = self._kept(self._resolve("manifest.json", "the layout"), "manifest.json")
        with _as(self.error):
            entries = parse_docker_manifest(manifest, self.where)
        found = []
        for entry in entries:
            config_name = self._resolve(entry["Config"], "manifest.json")
            digest = self.digests[config_name].digests()[0]
            if same_image(digest, self.image_id):
                return entry, config_name
            found.append(f"{entry['Config']} has sha256:{digest}")
        raise self.error(f"{self.where}: no config it holds has the image id {self.image_id} as its digest ({', '.join(found)}); "
                         "the archive is not the image it claims to be")

    def _diff_ids(self, config_name: str) -> list[str]:
        with _as(self.error):
            config = config_object(self._kept(config_name, "the image config"), self.where)
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(item, str) for item in diff_ids):
            raise self.error(f"{self.where}: the image config has no rootfs.diff_ids list; the archive is damaged")
        return diff_ids

    def _check_layer(self, position: int, layer: str, diff_id: str) -> None:
        raw, inflated = self.digests[self._resolve(layer, "manifest.json")].digests()
        if diff_id in (f"sha256:{raw}", f"sha256:{inflated}"):
            return
        uncompressed = f" (sha256:{inflated} uncompressed)" if inflated else ""
        raise self.error(f"{self.where}: layer {layer} has sha256:{raw}{uncompressed}, but the config's diff_ids[{position}] is "
                         f"{diff_id}: the layer is not the one the image id names, `docker load` would refuse it")

    def _check_once(self, name: str) -> None:
        member = self._resolve(name, "manifest.json")
        for each in sorted({posixpath.normpath(name), member}):
            if self.counts[each] > 1:
                raise self.error(f"{self.where}: {each} appears {self.counts[each]} times; which one `docker load` reads is "
                                 "ambiguous, the archive is damaged or hostile")

    def _resolve(self, name: str, listed_in: str) -> str:
        """The regular file `name` is, following links (`docker save` stores a repeated layer as a symlink)."""
        problem = name_problem(name)
        if problem:
            raise self.error(f"{self.where}: {listed_in} names {name!r}, which {problem}; the archive is damaged or hostile")
        wanted = posixpath.normpath(name)
        for _hop in range(16):
            if wanted in self.digests:
                return wanted
            if wanted not in self.links:
                raise self.error(f"{self.where} lacks {name}, which {listed_in} lists; the archive is incomplete, save it again")
            wanted = self.links[wanted]
        raise self.error(f"{self.where}: {name} is a loop of links; the archive is damaged")

    def _kept(self, name: str, what: str) -> bytes:
        kept = self.digests[name].kept
        if kept is None:
            raise self.error(f"{self.where}: {what} ({name}) is not JSON of at most {METADATA_SIZE_LIMIT} bytes; the archive is damaged")
        return bytes(kept)


@contextlib.contextmanager
def _as(error: ErrorClass) -> t.Iterator[None]:
    """Re-raise an ArchiveError of the shared parsers as `error`, the kind of failure this check reports."""
    try:
        yield
    except ArchiveError as exc:
        if isinstance(exc, error):
            raise
        raise error(str(exc)) from None


# ---------------------------------------------------------------------------------------------------------
# A stream checked as it is read.
# ---------------------------------------------------------------------------------------------------------

class _CheckedReader(io.RawIOBase):
    """Reads `stream` and feeds what passes to `check`; at its end, `check.finish()` raises if the archive fails."""

    def __init__(self, stream: t.Any, check: ArchiveCheck) -> None:
        super().__init__()
        self._stream = stream
        self._check = check
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        count = self._stream.readinto(buffer)
        if count:
            self._check.feed(memoryview(buffer)[:count])
        elif not self._finished:
            self._finished = True
            self._check.finish()
        return count

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


def checked_stream(stream: t.Any, check: ArchiveCheck) -> t.BinaryIO:
    """`stream`, checked as it is read: the read that finds its end raises instead when the archive fails `check`."""
    return t.cast(t.BinaryIO, _CheckedReader(stream, check))


class _ChunkChecker:
    """`check` fed in a thread of its own, through a bounded queue; a failure is kept for the reading side to raise.

    The thread always drains the queue to its end, so the reading side never waits on a full queue after a failure.
    """

    _END = object()

    def __init__(self, check: ArchiveCheck, depth: int) -> None:
        self._check = check
        self._queue: queue.Queue[t.Any] = queue.Queue(maxsize=depth)
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="archive-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if self.failure is not None:
                continue
            try:
                if item is None:
                    self._check.finish()
                else:
                    self._check.feed(item)
            # Whatever stops the check must reach the reading side, or the archive would pass unchecked.
            except BaseException as error:  # pylint: disable=broad-exception-caught
                self.failure = error

    def feed(self, chunk: bytes) -> None:
        self.raise_failure()
        self._queue.put(chunk)

    def finish(self) -> None:
        """Wait for every chunk and the final checks; raise what failed."""
        self._queue.put(None)
        self.stop()
        self.raise_failure()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._END)
            self._thread.join()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


def checked_chunks(chunks: t.Iterable[bytes], check: ArchiveCheck, depth: int = CHECK_QUEUE_CHUNKS) -> t.Iterator[bytes]:
    """`chunks`, passed on as they come while `check` runs over them in a thread of its own (sha256 and zlib release
    the GIL, so the check runs beside the reading and the Keep writes); the stream's end is passed on only once the
    whole archive passed `check.finish()`: a failure raises instead, at the next chunk or at the end at the latest.

    The chunks must not change once passed on (`bytes`); at most `depth` of them wait for the check.
    """
    checker = _ChunkChecker(check, depth)
    source = iter(chunks)
    try:
        for chunk in source:
            if chunk:
                checker.feed(chunk)
                yield chunk
        checker.finish()
    finally:
        checker.stop()
        close_source = getattr(source, "close", None)
        if close_source is not None:  # a source left unread (the upload stopped) lets go of its connection now
            close_source()
