# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Docker image ids as one value type: `sha256:<64 hex>`, or a prefix of one.

Docker names an image by the sha256 digest of its config. Arvados stores that id in two spellings: v2 images'
hash links and file names say `sha256:<hex>`, v1 ones the bare hex. An ImageId holds the lowercase hex digits and
speaks both. Pure code.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import hashlib
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError

SHA256 = "sha256:"
HEX_LENGTH = 64
# A bare hex string shorter than this reads as a repository name: `docker images` shows 12 digits.
MIN_BARE_PREFIX = 12
# After an explicit `sha256:` nothing else could be meant, so shorter prefixes are fine.
MIN_SHA256_PREFIX = 4

_LOWER_HEX = re.compile(r"[0-9a-f]+")
_ANY_HEX = re.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True, order=True)
class ImageId:
    """An image id, or a prefix of one (`is_complete` tells which); `str()` gives `sha256:<hex>`."""

    hex: str

    def __str__(self) -> str:
        return SHA256 + self.hex

    @property
    def is_complete(self) -> bool:
        return len(self.hex) == HEX_LENGTH

    @property
    def short(self) -> str:
        """The 12 digits `docker images` shows."""
        return self.hex[:12]

    @property
    def link_names(self) -> tuple[str, str]:
        """How hash links name this id: `sha256:<hex>` (v2 images) and the bare hex (v1 images)."""
        return str(self), self.hex

    def starts(self, other: ImageId) -> bool:
        """Whether `other` is this id or starts with this prefix."""
        return other.hex.startswith(self.hex)

    def keep_file_name(self) -> str:
        """The file a v2 image's `docker save` tarball has in its collection."""
        if not self.is_complete:
            raise ValueError(f"not a full image id: {self}")
        return f"{self}.tar"

    @classmethod
    def of_config(cls, config_bytes: bytes) -> ImageId:
        """The id of the image whose config is `config_bytes`: their sha256 digest."""
        return cls(hashlib.sha256(config_bytes).hexdigest())

    @classmethod
    def from_stored(cls, name: t.Any) -> ImageId | None:
        """The id a stored name spells (a hash link name, a file name without `.tar`, a daemon's id), in either form.

        None for anything else; upper-case hex reads as the same id.
        """
        if not isinstance(name, str):
            return None
        digits = name[len(SHA256):] if name.startswith(SHA256) else name
        if not digits or not _ANY_HEX.fullmatch(digits) or len(digits) > HEX_LENGTH:
            return None
        return cls(digits.lower())

    @classmethod
    def from_digest(cls, digest: str) -> ImageId | None:
        """The id a registry or OCI digest names: only `sha256:` and 64 lowercase hex digits."""
        image_id = cls.from_stored(digest) if digest.startswith(SHA256) else None
        return image_id if image_id is not None and image_id.is_complete and digest == str(image_id) else None


def parse_image_id(text: str) -> ImageId | None:
    """What a user wrote, read as an image id: `sha256:` and 4 to 64 lowercase hex digits, or 12 to 64 bare ones.

    None when `text` is no image id (a repository name); ImageRefError when it starts with `sha256:` but the rest
    is not an id, worded without the option's name, which the caller puts in front.
    """
    if text.startswith(SHA256):
        digits = text[len(SHA256):]
        if digits.lower() != digits:
            raise ImageRefError(f"image id {text!r} must be lowercase; use lowercase hex digits.")
        if not _LOWER_HEX.fullmatch(digits) or not MIN_SHA256_PREFIX <= len(digits) <= HEX_LENGTH:
            raise ImageRefError(
                f"{text!r} is not an image id; after 'sha256:' give {MIN_SHA256_PREFIX} to {HEX_LENGTH} hex digits."
            )
        return ImageId(digits)
    if MIN_BARE_PREFIX <= len(text) <= HEX_LENGTH and _LOWER_HEX.fullmatch(text):
        return ImageId(text)
    return None


def full_image_id(name: t.Any) -> str | None:
    """A stored name or id in the `sha256:<hex>` spelling, or None when it spells no image id."""
    image_id = ImageId.from_stored(name)
    return None if image_id is None else str(image_id)


def keep_file_name(image_id: str) -> str:
    """The file name an image's `docker save` tarball has in its collection, for an id in either spelling."""
    parsed = ImageId.from_stored(image_id)
    if parsed is None:
        raise ValueError(f"not a full image id: {image_id!r}")
    return parsed.keep_file_name()


def same_image(one: t.Any, other: t.Any) -> bool:
    """Whether two stored names or ids spell the same image id."""
    first, second = ImageId.from_stored(str(one)), ImageId.from_stored(str(other))
    return first is not None and first == second
