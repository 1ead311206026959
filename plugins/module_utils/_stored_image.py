# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""An image stored in a collection, read back from Keep and checked as `docker load` would check it (`verify: true`).

Every block of the image's file is read, one at a time, and fed to the same check the upload makes
(_archive_check), so this costs a read of the whole image.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._archive_check import ArchiveCheck
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError, CollectionError, StoredImageError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import keep_file_name
from ansible_collections.arvados.cluster.plugins.module_utils._records import ImageCollection
from ansible_collections.arvados.cluster.plugins.module_utils._upload import escape_manifest_name

_LOCATOR = re.compile(r"[0-9a-f]{32}\+([0-9]+)(\+\S*)?")
# (signed locator, start in the block, length): one piece of a file.
Segment = t.Tuple[str, int, int]


def file_segments(manifest_text: str, file_name: str) -> list[Segment] | None:
    """Where the top-level file `file_name` lies in the manifest's blocks; None when it has no such file."""
    for line in manifest_text.splitlines():
        tokens = line.split()
        if not tokens or tokens[0] != ".":
            continue
        locators = [token for token in tokens[1:] if _LOCATOR.fullmatch(token)]
        for token in tokens[1 + len(locators):]:
            position, _sep, rest = token.partition(":")
            length, _sep, name = rest.partition(":")
            if name == escape_manifest_name(file_name):
                return _pieces(locators, int(position), int(length))
    return None


def _pieces(locators: list[str], position: int, length: int) -> list[Segment]:
    """The blocks' parts that hold bytes `position` to `position + length` of the stream."""
    pieces: list[Segment] = []
    block_start = 0
    for locator in locators:
        block_size = int(_LOCATOR.fullmatch(locator).group(1))  # type: ignore[union-attr]
        start, end = max(position, block_start), min(position + length, block_start + block_size)
        if start < end:
            pieces.append((locator, start - block_start, end - start))
        block_start += block_size
    return pieces


def stored_image_problem(client: t.Any, collection: ImageCollection, image_id: str) -> str | None:
    """Why `collection` does not hold `image_id` as `docker load` would load it, or None when it does."""
    file_name = keep_file_name(image_id)
    segments = file_segments(collection.manifest_text or "", file_name)
    if segments is None:
        return f"it has no file {file_name}"
    check = ArchiveCheck(image_id, f"{file_name} of collection {collection.uuid}", error=StoredImageError)
    try:
        for locator, start, length in segments:
            block = _read_block(client, locator, collection.uuid)
            check.feed(memoryview(block)[start:start + length])
            del block
        check.finish()
    except StoredImageError as exc:
        return str(exc)
    return None


def _read_block(client: t.Any, locator: str, collection_uuid: str) -> bytes:
    """One block from Keep (the Keep client retries); a block Keep cannot give is a failure, not a reason to upload again."""
    try:
        return client.call(client.keep.get, locator, num_retries=client.options.num_retries)
    except CollectionError:
        raise
    # The Keep client's errors (arvados.errors.KeepReadError and others) share no base class with the API's.
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise ArvadosClientError(f"verify: reading block {locator.split('+')[0]} of collection {collection_uuid} from Keep failed: {exc}; "
                                 "try again when Keep answers, or run without verify") from None
