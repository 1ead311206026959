# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Registry references and credentials, as Docker reads them: pure code for `source: registry`.

`registry.example:5000/team/bwa:0.7.17` is host `registry.example:5000`, repository `team/bwa`, tag `0.7.17`;
`team/bwa@sha256:<hex>` is that exact manifest on Docker Hub (repository `team/bwa`; `bwa` alone is `library/bwa`).
Credentials come from the `credHelpers`, `credsStore` and `auths` of a Docker `config.json` or a containers
`auth.json`, in that order as Docker reads them, under the keys Docker writes (`https://index.docker.io/v1/` for
Docker Hub); a credential helper's answer is read here too.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import json
import re
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError, PullError
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRef, parse_image_ref, split_repo_tag

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class RegistryRef:
    """Where a manifest is: the registry `host` (as written), `repository` (its path there), and a tag or a digest."""

    host: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def reference(self) -> str:
        """The manifest reference asked for: the digest when pinned, else the tag."""
        return self.digest or t.cast(str, self.tag)

    def __str__(self) -> str:
        name = f"{self.host}/{self.repository}"
        return f"{name}:{self.tag}@{self.digest}" if self.tag and self.digest else f"{name}@{self.digest}" if self.digest else f"{name}:{self.tag}"

    @property
    def is_loopback(self) -> bool:
        """Registries on 127.0.0.0/8, ::1 and localhost may speak plain HTTP, as Docker allows."""
        host = self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host
        host = host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def credential_keys(self) -> tuple[str, ...]:
        """The keys a Docker config.json or an auth.json may hold this registry's credentials under."""
        if self.host == DOCKER_HUB:
            return DOCKER_HUB_KEYS
        return (self.host, f"https://{self.host}", f"http://{self.host}", f"https://{self.host}/v1/", f"https://{self.host}/v2/")


def parse_registry_name(name: str, tag: str | None) -> tuple[RegistryRef, ImageRef]:
    """The registry reference `name` (and `tag`) give, and the image reference Arvados links name.

    A digest with no tag names no `repo:tag`: the ImageRef is then empty, and only the image id is linked.
    """
    base, at, digest = name.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ImageRefError(f"name: {digest!r} in {name!r} is not a sha256 manifest digest (sha256: and 64 lowercase hex digits)")
    repo, name_tag = split_repo_tag(base)
    if at and name_tag is None and tag is None:
        image_ref = ImageRef()
        parse_image_ref(base)  # the repository name must still be valid
    else:
        image_ref = parse_image_ref(base, tag)
    host, path = _split_host(repo)
    return RegistryRef(host, path, image_ref.tag, digest or None), image_ref


def _split_host(repo: str) -> tuple[str, str]:
    first, sep, rest = repo.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost"):
        host = first[:-len(":443")] if first.endswith(":443") else first
        host = DOCKER_HUB if host == "index.docker.io" else host
    else:
        host, rest = DOCKER_HUB, repo
    if host == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    return host, rest


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A username and password, and where they were found (for messages; never the secret itself)."""

    username: str
    password: str = dataclasses.field(repr=False)
    origin: str


def config_credentials(config: t.Any, keys: t.Sequence[str], origin: str) -> Credentials | str | None:
    """What a config.json or auth.json holds for a registry, as Docker reads it: the name of the credential helper to
    ask (`credHelpers` for this registry, else the `credsStore` of every registry), else the `auths` entry's credentials,
    else None."""
    if not isinstance(config, dict):
        return None
    helpers = config.get("credHelpers") if isinstance(config.get("credHelpers"), dict) else {}
    for key in keys:
        if isinstance(helpers.get(key), str) and helpers[key]:
            return helpers[key]
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return store
    auths = config.get("auths") if isinstance(config.get("auths"), dict) else {}
    for key in keys:
        entry = auths.get(key)
        found = _entry_credentials(entry, f"{origin} (auths.{key})") if isinstance(entry, dict) else None
        if found is not None:
            return found
    return None


def _entry_credentials(entry: dict, origin: str) -> Credentials | None:
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"], origin)
    encoded = entry.get("auth")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ImageRefError(f"{origin}: the auth value is not base64 of user:password; log in again") from None
    return Credentials(username, password, origin) if sep else None


# What a credential helper prints on stdout when it holds nothing for the registry (docker-credential-helpers' ErrCredentialsNotFound).
HELPER_NOT_FOUND = "credentials not found in native keychain"


def helper_credentials(rc: int, stdout: str, helper: str) -> Credentials | None:
    """A credential helper's answer to `get`: credentials, or None when it holds none for the registry (anonymous access,
    as Docker reads it). Any other failure, or an identity token (which only Docker's own login flow can use), is an error."""
    program = f"docker-credential-{helper}"
    if rc != 0:
        if HELPER_NOT_FOUND in stdout:
            return None
        raise PullError(f"the credential helper {program} failed (exit status {rc}: {stdout.strip()[:200]}); "
                        "log in again, or give registry_username and registry_password")
    try:
        answer = json.loads(stdout)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("Secret"), str) or not isinstance(answer.get("Username"), str):
        raise PullError(f"the credential helper {program} did not answer with JSON of Username and Secret; "
                        "give registry_username and registry_password")
    if answer["Username"] == "<token>":
        raise PullError(f"the credential helper {program} holds an identity token, which a registry login cannot use; "
                        "give registry_username and registry_password")
    return Credentials(answer["Username"], answer["Secret"], f"credential helper {program}")
