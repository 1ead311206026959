# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The registry options every task checks, and what a collection records of the registry reference it was stored from.

Pure code, read by every task whatever its source: the registry client itself (`_registry_source`, with python-dxf)
is imported only by a task that reads a registry.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import OptionError
from ansible_collections.arvados.cluster.plugins.module_utils._records import ImageCollection, ImageLink

REGISTRY_SPEC: dict[str, dict[str, t.Any]] = {
    "registry_username": {"type": "str"},
    "registry_password": {"type": "str", "no_log": True},
    "registry_ca_path": {"type": "path"},
    "registry_insecure": {"type": "bool", "default": False},
}
# Collection properties recording where an image came from, so a later run can tell whether the tag moved.
MANIFEST_DIGEST_PROPERTY = "docker-image-manifest-digest"
REFERENCE_PROPERTY = "docker-image-registry-reference"
_STORED_NAME = re.compile(r"(sha256:[0-9a-f]{64})\.tar")


def check_registry_options(params: t.Mapping[str, t.Any]) -> None:
    """The registry_* options are read with source: registry only; elsewhere they are an error naming them."""
    given = [name for name in REGISTRY_SPEC if params.get(name) not in (None, False)]
    if given and params["source"] != "registry":
        raise OptionError(f"{given[0]} is only read with source: registry, but source is {params['source']}; "
                          f"set source: registry or drop {', '.join(given)}")
    if params["source"] == "registry" and bool(params.get("registry_username")) != bool(params.get("registry_password")):
        raise OptionError("registry_username and registry_password go together: give both, or neither to use the saved logins")


@dataclasses.dataclass(frozen=True)
class RecordedImage:
    """What a project's collection records of the image a registry reference named when it was stored."""

    image_id: str
    manifest_digest: str
    created: str


# Given a registry reference (host/repo:tag), what the project's collection tagged with it records; None when none does.
RecordedLookup = t.Callable[[str], t.Optional[RecordedImage]]


def recorded_image(collections: t.Iterable[ImageCollection], tag_links: t.Iterable[ImageLink], reference: str) -> RecordedImage | None:
    """The image the project's `repo:tag` collections record as stored from `reference`; None unless they agree on one."""
    created = {link.head_uuid: str(link.properties.get("image_timestamp") or "") for link in tag_links}
    found = set()
    for collection in collections:
        stored = _STORED_NAME.fullmatch(collection.file_names[0]) if len(collection.file_names) == 1 else None
        digest = collection.properties.get(MANIFEST_DIGEST_PROPERTY)
        if stored and isinstance(digest, str) and collection.properties.get(REFERENCE_PROPERTY) == reference:
            found.add(RecordedImage(stored.group(1), digest, created.get(collection.uuid, "")))
    return found.pop() if len(found) == 1 else None


def provenance(manifest_digest: str, reference: str) -> dict[str, str]:
    """The properties of a new collection stored from `reference`, which named the manifest `manifest_digest`."""
    return {MANIFEST_DIGEST_PROPERTY: manifest_digest, REFERENCE_PROPERTY: reference}
