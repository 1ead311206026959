# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""An image stored in a collection, read back from Keep and checked as `docker load` would check it (`verify: true`).

Every block of the image's file is read, one at a time, and fed to the same check the upload makes
(_archive_check), so this costs a read of the whole image.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._archive_check import ArchiveCheck
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError, CollectionError, StoredImageError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import keep_file_name
from ansible_collections.arvados.cluster.plugins.module_utils._records import ImageCollection, file_segments


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
