# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Image platforms (`linux/arm64/v8`): parse what the user wrote, match it, and pick one image of a multi-platform index.

Architectures are compared as OCI spells them (`x86_64` is `amd64`). Pure code.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, ImageSourceError

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}


class Platform(t.NamedTuple):
    """An os, architecture (as OCI spells it) and optional variant; a plain tuple of the three reads the same."""

    os: str
    architecture: str
    variant: str | None = None


def parse_platform(platform: str) -> Platform:
    """`linux/arm64/v8` as (os, architecture, variant), architecture spelled as OCI spells it."""
    parts = platform.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageSourceError(f"platform {platform!r} is not os/architecture[/variant], e.g. linux/amd64")
    variant = parts[2] if len(parts) == 3 else None
    return Platform(parts[0], _oci_architecture(parts[1]), variant)


def _oci_architecture(architecture: str) -> str:
    return _ARCH_ALIASES.get(architecture, architecture)


def platform_matches(os_name: t.Any, architecture: t.Any, variant: t.Any, wanted: Platform) -> bool:
    """Whether an image's os, architecture and variant (as a config, descriptor or daemon spells them) are `wanted`."""
    wanted_os, wanted_architecture, wanted_variant = wanted
    if str(os_name).lower() != wanted_os or _oci_architecture(str(architecture).lower()) != wanted_architecture:
        return False
    return wanted_variant is None or str(variant or "").lower() == wanted_variant


def descriptor_platform(descriptor: dict) -> dict:
    platform = descriptor.get("platform")
    return platform if isinstance(platform, dict) else {}


def describe_platform(platform: dict) -> str:
    parts = [platform.get("os") or "?", platform.get("architecture") or "?"]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(str(part) for part in parts)


def descriptor_on_platform(descriptor: dict, platform: Platform) -> bool:
    described = descriptor_platform(descriptor)
    return platform_matches(described.get("os"), described.get("architecture"), described.get("variant"), platform)


def is_attestation(descriptor: dict) -> bool:
    """Build attestations (provenance, SBOM) ride in indexes as pseudo-images of platform unknown/unknown."""
    annotations = descriptor.get("annotations")
    if isinstance(annotations, dict) and "vnd.docker.reference.type" in annotations:
        return True
    return descriptor_platform(descriptor).get("os") == "unknown"


def select_platform_descriptor(descriptors: list[dict], platform: Platform | None, where: str) -> dict:
    """The one image of a multi-platform index to use: the one of `platform`, or the only one there is."""
    images = [item for item in descriptors if not is_attestation(item)]
    if platform is not None:
        images = [item for item in images if descriptor_on_platform(item, platform)]
    if len(images) == 1:
        return images[0]
    available = ", ".join(describe_platform(descriptor_platform(item)) for item in descriptors if not is_attestation(item)) or "none"
    if images:
        raise ArchiveError(f"{where} holds the image for several platforms ({available}); choose one with the platform option")
    wanted = "/".join(part for part in platform if part) if platform else "any platform"
    raise ArchiveError(f"{where} has no image for {wanted} (platforms it has: {available})")
