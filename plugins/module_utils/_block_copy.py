# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Copy a collection's blocks from one cluster's Keep to another's, and the manifest re-signed by the destination.

The manifest is kept token for token, with only the block locators' signatures replaced, so the copy has the same
portable data hash. Blocks are copied in worker threads, at most `blocks_in_flight` at once, each streamed from the
source's GET into the destination's PUT (`_keep_stream`); a block that cannot be streamed so (a destination that
stored fewer copies than asked) goes through the SDK's Keep clients, read whole then written, at most
`BLOCKS_HELD` at once. Nothing is written to disk. A block the resume cache holds and the destination's Keep
confirms is neither read nor sent again.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import random
import re
import threading
import time
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import KeepUploadError
from ansible_collections.arvados.cluster.plugins.module_utils._keep_stream import KeepStreamError
from ansible_collections.arvados.cluster.plugins.module_utils._resume_cache import ResumeCache, keep_confirms

# A block locator in a manifest: `<md5>+<size>` and its hints (the signature `+A<sig>@<expiry>` among them).
_BLOCK_TOKEN = re.compile(r"^([0-9a-f]{32}\+[0-9]+)((?:\+[A-Z][^+\s]*)*)$")
BLOCKS_IN_FLIGHT = 4
# Blocks read whole into memory at once, when a block cannot be streamed.
BLOCKS_HELD = 2

GetBlock = t.Callable[[str], bytes]
PutBlock = t.Callable[[bytes], str]


def block_key(token: str) -> str | None:
    """`<md5>+<size>` of a manifest token that is a block locator; None for stream names and file segments."""
    found = _BLOCK_TOKEN.match(token)
    return found.group(1) if found else None


def manifest_blocks(manifest_text: str) -> list[str]:
    """The manifest's block locators (as signed in it), each block once, in manifest order."""
    blocks: dict[str, str] = {}
    for line in manifest_text.splitlines():
        for token in line.split(" ")[1:]:
            key = block_key(token)
            if key is not None:
                blocks.setdefault(key, token)
    return list(blocks.values())


def resigned_manifest(manifest_text: str, signed: t.Mapping[str, str]) -> str:
    """The manifest with every block locator replaced by the destination's signed locator of the same block."""
    lines = []
    for line in manifest_text.splitlines():
        tokens = line.split(" ")
        lines.append(" ".join(tokens[:1] + [signed.get(block_key(token) or "", token) for token in tokens[1:]]))
    return "".join(f"{line}\n" for line in lines)


class BlockCopy:
    """One block's copy: offered to the destination from the resume cache first, else read from the source and written."""

    def __init__(self, get_block: GetBlock, put_block: PutBlock, destination_keep: t.Any, resume: ResumeCache | None,
                 stream: t.Callable[[str], str | None] | None = None, num_retries: int = 0) -> None:
        self.get_block = get_block
        self.put_block = put_block
        self.destination_keep = destination_keep
        self.resume = resume
        self.stream = stream
        self.num_retries = num_retries
        self._held = threading.BoundedSemaphore(BLOCKS_HELD)

    def __call__(self, locator: str) -> str:
        key = block_key(locator) or locator
        cached = self.resume.cached_locator(key) if self.resume is not None else None
        if cached is not None and keep_confirms(self.destination_keep, cached):
            return cached
        signed = self._streamed(locator) if self.stream is not None else None
        if signed is None:
            signed = self._through_memory(locator, key)
        if self.resume is not None:
            self.resume.remember(signed)
        return signed

    def _streamed(self, locator: str) -> str | None:
        """The block streamed source -> destination, retried as the SDK retries Keep requests (`num_retries`)."""
        for attempt in range(self.num_retries + 1):
            try:
                return self.stream(locator) if self.stream is not None else None
            except KeepStreamError as exc:
                if not exc.transient or attempt == self.num_retries:
                    raise
                time.sleep(random.random() * 2 ** (attempt + 1))
        return None

    def _through_memory(self, locator: str, key: str) -> str:
        with self._held:
            try:
                block = self.get_block(locator)
            except Exception as exc:
                raise SourceBlockError(f"reading block {key} from the source cluster's Keep failed: {exc}") from exc
            return self.put_block(block)


class SourceBlockError(Exception):
    """The source's Keep did not give a block."""


def copy_blocks(locators: list[str], copy_one: t.Callable[[str], str], blocks_in_flight: int = BLOCKS_IN_FLIGHT) -> dict[str, str]:
    """Copy every block with `copy_one` in `blocks_in_flight` worker threads; `<md5>+<size>` -> destination locator.

    The first failure stops the copy: no further block is started, and it raises KeepUploadError naming the block and
    what had been copied. Workers are daemon threads, so retries of a block that no longer matters do not hold the
    process up.
    """
    run = _CopyRun(locators, copy_one)
    workers = [threading.Thread(target=run.work, daemon=True) for _index in range(max(1, min(blocks_in_flight, len(locators))))]
    for worker in workers:
        worker.start()
    return run.result(len(workers))


class _CopyRun:
    """The shared state of one copy's workers: the next block to take, the locators copied, the first failure."""

    def __init__(self, locators: list[str], copy_one: t.Callable[[str], str]) -> None:
        self._pending = iter(locators)
        self._copy_one = copy_one
        self._changed = threading.Condition()
        self._copied: dict[str, str] = {}
        self._finished = 0
        self._failure: KeepUploadError | None = None
        self._total = len(locators)

    def _next(self) -> str | None:
        with self._changed:
            return None if self._failure is not None else next(self._pending, None)

    def work(self) -> None:
        try:
            while (locator := self._next()) is not None:
                try:
                    signed = self._copy_one(locator)
                except BaseException as exc:  # whatever ends a copy must reach the waiting thread
                    self._fail(locator, exc)
                    return
                with self._changed:
                    self._copied[block_key(locator) or locator] = signed
        finally:
            with self._changed:
                self._finished += 1
                self._changed.notify_all()

    def _fail(self, locator: str, exc: BaseException) -> None:
        with self._changed:
            if self._failure is None:
                self._failure = KeepUploadError(
                    f"copying block {block_key(locator) or locator} failed: {exc}; {len(self._copied)} of {self._total} blocks "
                    "had been copied, no collection was made (a re-run sends none of them again)")
                self._failure.__cause__ = exc

    def result(self, workers: int) -> dict[str, str]:
        with self._changed:
            self._changed.wait_for(lambda: self._failure is not None or self._finished == workers)
            if self._failure is not None:
                raise self._failure
            return dict(self._copied)
