# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""Parse and normalise what users write to name a Docker image, and the names Arvados gives images.

Pure code: no I/O, no Arvados or Docker SDK.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import SHA256, ImageId, parse_image_id

DEFAULT_TAG = "latest"

MAX_NAME_LENGTH = 255

_DEFAULT_DOMAIN = "docker.io"
_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_REPO_PREFIX = "library/"

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    r"(?:" + _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class ImageRef:
    """A normalised image reference: either `repo` and `tag`, or an image id (prefix)."""

    repo: str | None = None
    tag: str | None = None
    image_id_prefix: str | None = None

    @property
    def is_image_id(self) -> bool:
        return self.image_id_prefix is not None

    @property
    def repo_tag(self) -> str | None:
        if self.repo is None:
            return None
        return f"{self.repo}:{self.tag}"

    @property
    def full_image_id(self) -> str | None:
        image_id = ImageId.from_stored(self.image_id_prefix)
        return str(image_id) if image_id is not None and image_id.is_complete else None


def parse_image_ref(name: str, tag: str | None = None) -> ImageRef:
    """Parse the module's `name` and `tag` options into an ImageRef.

    `name` is `repo`, `repo:tag`, `host[:port]/path/repo[:tag]`, an image id `sha256:<64 hex>`, or an
    id prefix: `sha256:` and at least 4 hex digits, or at least 12 bare hex digits.
    """
    _check_text("name", name)
    if tag is not None:
        _check_tag("tag", tag)
    _check_not_digest(name)
    image_id_prefix = image_id_prefix_of(name)
    if image_id_prefix is not None and not _is_hex_repo_with_tag(name, tag):
        _check_no_tag_for_image_id(name, tag)
        return ImageRef(image_id_prefix=image_id_prefix)
    repo, name_tag = split_repo_tag(name)
    if name_tag is not None:
        _check_tag("name", name_tag)
    return ImageRef(repo=normalise_repo(repo), tag=_merge_tags(name, name_tag, tag))


def split_repo_tag(name: str) -> tuple[str, str | None]:
    """Split `repo[:tag]` as Docker does: the tag follows the last `:` that has no `/` after it."""
    repo, sep, name_tag = name.rpartition(":")
    if not sep or "/" in name_tag:
        return name, None
    return repo, name_tag


def image_id_prefix_of(name: str) -> str | None:
    """Return `sha256:<hex>` when `name` is an image id or id prefix, else None."""
    try:
        image_id = parse_image_id(name)
    except ImageRefError as exc:
        raise ImageRefError(f"name: {exc}") from None
    return None if image_id is None else str(image_id)


def normalise_repo(repo: str) -> str:
    """Check a repository name against Docker's grammar and return its familiar form.

    `docker.io/library/x` and `index.docker.io/library/x` become `x`, `docker.io/u/x` becomes `u/x`,
    and `host:443/x` becomes `host/x`, as `docker pull` and arv-keepdocker store them.
    """
    _check_text("name", repo)
    if len(repo) > MAX_NAME_LENGTH:
        raise ImageRefError(f"name: repository name is longer than {MAX_NAME_LENGTH} characters: {repo!r}.")
    domain, path = _split_domain(repo)
    if domain is not None:
        _check_domain(repo, domain)
    _check_path(repo, path)
    return _familiar_name(_without_https_port(domain), path)


def normalise_repo_tag(name: str) -> str:
    """`name` as the `repo:tag` Docker lists it (`docker.io/library/x` is `x:latest`), to compare image names.

    Unchanged when it names no repository (an image id, a digest reference, a name Docker would refuse), so such a
    name still equals itself.
    """
    try:
        return parse_image_ref(name).repo_tag or name
    except ImageRefError:
        return name


def _split_domain(repo: str) -> tuple[str | None, str]:
    """Split off a registry host the way Docker decides what the first path component is."""
    first, sep, rest = repo.partition("/")
    if not sep:
        return None, repo
    # Docker also takes `localhost` (which reads the same either way) and an upper-case first part
    # for a host; here the latter gets the "use lowercase" error.
    if not any(c in first for c in ".:"):
        return None, repo
    return first, rest


def _without_https_port(domain: str | None) -> str | None:
    # `docker pull host:443/x` lists the image as `host/x` afterwards (see arv-keepdocker).
    if domain is not None and domain.endswith(":443"):
        return domain[:-len(":443")]
    return domain


def _familiar_name(domain: str | None, path: str) -> str:
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = _DEFAULT_DOMAIN
    if domain is not None and domain != _DEFAULT_DOMAIN:
        return f"{domain}/{path}"
    if path.startswith(_OFFICIAL_REPO_PREFIX) and "/" not in path[len(_OFFICIAL_REPO_PREFIX):]:
        return path[len(_OFFICIAL_REPO_PREFIX):]
    return path


def _check_text(field: str, value: t.Any) -> None:
    if not isinstance(value, str):
        raise ImageRefError(f"{field}: expected a string, got {type(value).__name__}.")
    if value == "":
        raise ImageRefError(f"{field}: must not be empty; give an image name such as 'repo:tag'.")
    if any(c.isspace() for c in value):
        raise ImageRefError(f"{field}: {value!r} contains whitespace; remove it.")


def _check_tag(field: str, tag: str) -> None:
    if tag == "":
        raise ImageRefError(f"{field}: ':' must be followed by a tag; write 'repo:tag' or leave out the ':'.")
    _check_text(field, tag)
    if len(tag) > 128:
        raise ImageRefError(f"{field}: the tag {tag[:20]!r}... is longer than 128 characters; use a shorter tag.")
    if not _TAG.fullmatch(tag):
        raise ImageRefError(
            f"{field}: {tag!r} is not a valid tag; a tag starts with a letter, digit or '_' and holds only "
            "letters, digits, '_', '.' and '-'."
        )


def _check_not_digest(name: str) -> None:
    if "@" in name:
        raise ImageRefError(
            f"name: {name!r} is a digest reference; Arvados stores images by 'repo:tag' and image id, not by "
            "registry digest. Give 'repo:tag' instead."
        )


def _is_hex_repo_with_tag(name: str, tag: str | None) -> bool:
    # With a tag, bare hex is a repository name, so `name: x, tag: y` means the same as `name: x:y`.
    return tag is not None and not name.startswith(SHA256)


def _check_no_tag_for_image_id(name: str, tag: str | None) -> None:
    if tag is not None:
        raise ImageRefError(
            f"tag: name {name!r} is an image id, which has no tag; leave out tag or give a repository name."
        )


def _check_domain(repo: str, domain: str) -> None:
    if not _DOMAIN.fullmatch(domain):
        raise ImageRefError(f"name: {domain!r} in {repo!r} is not a valid registry host[:port].")


def _check_path(repo: str, path: str) -> None:
    if path.lower() != path:
        raise ImageRefError(f"name: {lowercase_hint(repo)}.")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise ImageRefError(
                f"name: {repo!r} is not a valid repository name; each '/'-separated part holds lowercase letters "
                "and digits, separated by '.', '_', '__' or dashes."
            )


def lowercase_hint(repo: str) -> str:
    """What a repository name with capitals gets told: Docker refuses it, and so nothing is stored under it."""
    return f"repository name {repo!r} must be lowercase; use {repo.lower()!r}"


def untagged_hint(name: str) -> str | None:
    """What a name without a tag was read as (Docker's rule: `latest`), for a message saying nothing was found."""
    if ":" in name or _is_image_id(name):
        return None
    return f"{name!r} names no tag, so {name}:{DEFAULT_TAG} was looked for; give the tag you mean"


def stored_name_hints(name: str) -> list[str]:
    """Why `name`, read verbatim as the API server reads it, may find nothing that the image module stored.

    The module stores the name Docker lists (`docker.io/team/x:1` is `team/x:1`) and refuses capitals (its error is
    `lowercase_hint`); a name without a tag means `latest`. The lookup adds these to its "not found".
    """
    if _is_image_id(name):
        return []
    repo, tag = split_repo_tag(name)
    looked_for = name if tag is not None else f"{name}:{DEFAULT_TAG}"
    untagged = untagged_hint(name)
    hints = [untagged] if untagged else []
    try:
        stored = parse_image_ref(name).repo_tag
    except ImageRefError:
        if repo.lower() != repo and _is_valid_repo(repo.lower()):
            hints.insert(0, lowercase_hint(repo))
        return hints
    if stored != looked_for:
        hints.insert(0, f"{looked_for} is stored as {stored} (the name Docker lists); use {stored!r}")
    return hints


def _is_image_id(name: str) -> bool:
    try:
        return image_id_prefix_of(name) is not None
    except ImageRefError:
        return False


def _is_valid_repo(repo: str) -> bool:
    try:
        normalise_repo(repo)
    except ImageRefError:
        return False
    return True


def _merge_tags(name: str, name_tag: str | None, tag: str | None) -> str:
    if name_tag is not None and tag is not None and name_tag != tag:
        raise ImageRefError(
            f"name {name!r} includes tag {name_tag!r} but option tag is {tag!r}; give the tag in only one of "
            "name and tag, or make them the same."
        )
    return name_tag or tag or DEFAULT_TAG


def default_collection_name(repo_tag: str | None, image_id: str) -> str:
    """The collection name arv-keepdocker gives an image (sdk/python/arvados/commands/keepdocker.py)."""
    if repo_tag:
        return f"Docker image {repo_tag.replace('/', ' ')} {image_id[:12]}"
    return f"Docker image {image_id[:12]}"


def split_container_image(container_image: str) -> tuple[str, str]:
    """Split a container request's `container_image` as the API server does: at the FIRST `:`.

    services/api/app/models/collection.rb (find_all_for_docker_image): `host:5000/repo` becomes term
    `host`, tag `5000/repo`; `repo:` keeps the empty tag; only a string without `:` gets `latest`.
    """
    term, sep, tag = container_image.partition(":")
    if not sep:
        return container_image, DEFAULT_TAG
    return term, tag
