# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The signed locators of the blocks an upload wrote, kept so that an interrupted upload sends only what Keep lacks.

As arv-put's resume cache holds them (sdk/python/arvados/commands/put.py): signed locators, which a Keep server
honours for the token that wrote them until their signature expires, and nothing else, never the token. One file per
(cluster, token, image id), named by a SHA-256 of the three, under `$XDG_CACHE_HOME/arvados-cluster/uploads` (else
`~/.cache/...`), mode 0600 in a 0700 folder. A cached block is used again only once Keep confirms it (HEAD with the
signed locator: keepstore checks the signature); an entry that is expired or near it, one Keep refuses (another
token's, another cluster's), or a file that cannot be read or written means the block is written again, never a
failure.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import typing as t

CACHE_FOLDER = os.path.join("arvados-cluster", "uploads")
# An entry whose signature expires sooner is not used: the collection made from it must still be signed when saved.
EXPIRY_MARGIN_SECONDS = 3600
_SIGNED_LOCATOR = re.compile(r"^([0-9a-f]{32}\+[0-9]+)(?:\+[B-Z][^+]*)*\+A[0-9a-f]{40}@([0-9a-f]{8})(?:\+[B-Z][^+]*)*$")

PutBlock = t.Callable[[bytes], str]


def cache_folder(environ: t.Mapping[str, str] | None = None) -> str:
    """Where upload caches live: the XDG cache folder (else ~/.cache) of the user the module runs as."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, CACHE_FOLDER)


def cache_file_name(api_host: str, api_token: str, image_id: str) -> str:
    """The file of one (cluster, token, image id): a hash of the three, so the name tells none of them."""
    return hashlib.sha256("\n".join((api_host, api_token, image_id)).encode()).hexdigest() + ".json"


def block_key(signed_locator: str) -> tuple[str, int] | None:
    """(`<md5>+<size>`, signature expiry in Unix seconds) of a signed locator, or None when it is not one."""
    found = _SIGNED_LOCATOR.match(signed_locator)
    return None if found is None else (found.group(1), int(found.group(2), 16))


def usable_entries(entries: t.Any, now: float) -> dict[str, str]:
    """The entries of a cache file worth a HEAD: well formed, each under its own block, far enough from expiry."""
    if not isinstance(entries, dict):
        return {}
    usable = {}
    for key, locator in entries.items():
        parsed = block_key(locator) if isinstance(locator, str) else None
        if parsed is not None and parsed[0] == key and parsed[1] > now + EXPIRY_MARGIN_SECONDS:
            usable[key] = locator
    return usable


class ResumeCache:
    """One upload's cache file: blocks Keep confirmed, by `<md5>+<size>`, written again after each confirmed block."""

    def __init__(self, path: str, now: t.Callable[[], float] = time.time) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._blocks = usable_entries(self._read(), now())
        # What an earlier run left: only these are worth an MD5 of each block read. The blocks this run writes are
        # recorded for a later run, never looked up again here (an MD5 per 64 MiB block costs ~0.1 s of CPU).
        self._earlier = frozenset(self._blocks)

    @classmethod
    def for_upload(cls, api_host: str, api_token: str, image_id: str) -> ResumeCache:
        return cls(os.path.join(cache_folder(), cache_file_name(api_host, api_token, image_id)))

    def _read(self) -> t.Any:
        try:
            with open(self.path, encoding="utf-8") as cache_file:
                return json.load(cache_file).get("blocks")
        except (OSError, ValueError, AttributeError):
            return None

    def cached(self, block: bytes) -> str | None:
        """The signed locator an earlier run cached for `block`, if any (not yet confirmed by Keep); no MD5 when none did."""
        if not self._earlier:
            return None
        key = f"{hashlib.md5(block).hexdigest()}+{len(block)}"
        if key not in self._earlier:
            return None
        with self._lock:
            return self._blocks.get(key)

    def cached_locator(self, block: str) -> str | None:
        """The signed locator this cache holds for the block `<md5>+<size>`, if any: a copy knows a block before reading it."""
        with self._lock:
            return self._blocks.get(block)

    def remember(self, signed_locator: str) -> None:
        """Record a block Keep confirmed; a cache that cannot be written only means no resume."""
        parsed = block_key(signed_locator)
        if parsed is None:
            return
        with self._lock:
            self._blocks[parsed[0]] = signed_locator
            self._write(dict(self._blocks))

    def _write(self, blocks: dict[str, str]) -> None:
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as cache_file:
                json.dump({"blocks": blocks}, cache_file)
            os.replace(temporary, self.path)
        except OSError:
            return

    def forget(self) -> None:
        """Drop the file once the upload's collection is saved."""
        with self._lock:
            self._blocks = {}
            self._earlier = frozenset()
            try:
                os.unlink(self.path)
            except OSError:
                pass


def resuming_writer(put_block: PutBlock, keep_client: t.Any, cache: ResumeCache) -> PutBlock:
    """`put_block` that first offers Keep the cached signed locator of the same block, and records what it writes."""
    def put(block: bytes) -> str:
        cached = cache.cached(block)
        if cached is not None and keep_confirms(keep_client, cached):
            return cached
        locator = put_block(block)
        cache.remember(locator)
        return locator
    return put


def keep_confirms(keep_client: t.Any, signed_locator: str) -> bool:
    """Whether Keep holds the block and honours the signature for this token (keepstore checks it on HEAD)."""
    try:
        return bool(keep_client.head(signed_locator, num_retries=0))
    except Exception:  # pylint: disable=broad-exception-caught
        return False
