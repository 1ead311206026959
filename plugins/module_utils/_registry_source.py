# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""A registry as an image source, with no Docker daemon: `source: registry`.

The protocol (bearer-token realms and basic auth, redirects to blob storage, streamed blobs with their digests
checked) is python-dxf's; this file adds what it leaves to its callers: where credentials come from (the task's
options, Docker's config.json and its credential helpers, the containers auth.json), plain HTTP only where Docker
allows it, and errors in words. Identity first: the manifest names the config digest, the image id; the config blob
is read only when something is to be created, the layers only when the image is uploaded. What a project's collection
records of the reference it was stored from stands in for the registry with `pull: missing`, and for the manifest
when a HEAD request says the tag still names the same manifest with `pull: always`.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import traceback
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._archive_check import ArchiveCheck, checked_chunks
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, ImageSourceError, PullError
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import ImageIdentity, config_created, config_object, is_image_index
from ansible_collections.arvados.cluster.plugins.module_utils._platform import parse_platform, select_platform_descriptor
from ansible_collections.arvados.cluster.plugins.module_utils._registry_archive import RegistryImage, archive_chunks, parse_image_manifest
from ansible_collections.arvados.cluster.plugins.module_utils._registry_record import RecordedImage, RecordedLookup, provenance
from ansible_collections.arvados.cluster.plugins.module_utils._registry_ref import (
    Credentials,
    RegistryRef,
    config_credentials,
    helper_credentials,
)
from ansible_collections.arvados.cluster.plugins.module_utils._task import RunCommand
from ansible_collections.arvados.cluster.plugins.module_utils._tar_stream import READ_CHUNK_SIZE, open_chunk_stream

try:
    import requests
    from dxf import DXF
    from dxf import exceptions as dxf_exceptions
except ImportError:
    DXF_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    DXF_IMPORT_ERROR = None

DEFAULT_PLATFORM = "linux/amd64"
# Seconds to connect, and between two reads of a response.
REGISTRY_TIMEOUT = 60
MANIFEST_SIZE_LIMIT = 4 * 1024 * 1024
CREDENTIALS_HINT = "check registry_username and registry_password (or the login in Docker's config.json or the containers auth.json)"


# ---------------------------------------------------------------------------------------------------------
# Credentials.
# ---------------------------------------------------------------------------------------------------------

def find_credentials(params: t.Mapping[str, t.Any], ref: RegistryRef, run_command: RunCommand | None) -> Credentials | None:
    """The task's credentials, else Docker's saved login (a credential helper's included), else the containers
    auth.json's; None for anonymous access."""
    if params.get("registry_username"):
        return Credentials(params["registry_username"], params["registry_password"], "registry_username/registry_password")
    for path in _credential_files():
        found = config_credentials(_read_json_file(path), ref.credential_keys(), path)
        if isinstance(found, str):
            return _ask_helper(found, ref, run_command)
        if found is not None:
            return found
    return None


def _credential_files() -> list[str]:
    docker_dir = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    files = [os.path.join(docker_dir, "config.json")]
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(os.environ["REGISTRY_AUTH_FILE"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    files.append(os.path.expanduser("~/.config/containers/auth.json"))
    return files


def _read_json_file(path: str) -> t.Any:
    try:
        with open(path, encoding="utf-8") as config_file:
            return json.load(config_file)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PullError(f"cannot read the registry logins in {path} ({exc}); fix or remove the file, or give registry_username") from None


def _ask_helper(helper: str, ref: RegistryRef, run_command: RunCommand | None) -> Credentials | None:
    """`docker-credential-<helper> get` with the registry's key on stdin, as Docker asks it."""
    program = f"docker-credential-{helper}"
    if run_command is None:
        raise PullError(f"Docker's config names the credential helper {program} for {ref.host}, which cannot run here; "
                        "give registry_username and registry_password")
    try:
        rc, stdout, _stderr = run_command([program, "get"], ref.credential_keys()[0])
    except OSError as exc:
        raise PullError(f"the credential helper {program} that Docker's config names for {ref.host} did not run "
                        f"({exc.strerror or exc}); install it, or give registry_username and registry_password") from None
    return helper_credentials(rc, stdout, helper)


# ---------------------------------------------------------------------------------------------------------
# The registry, through python-dxf.
# ---------------------------------------------------------------------------------------------------------

def _require_dxf() -> None:
    if DXF_IMPORT_ERROR is not None:
        raise ImageSourceError(f"source: registry needs the python-dxf library, and {sys.executable} cannot import it: "
                               f"install it there with `{sys.executable} -m pip install python-dxf`")


def _verification_failed(exc: BaseException) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc)


class RegistryClient:
    """One repository of one registry: HTTPS (verified unless `insecure`), plain HTTP where Docker allows it."""

    def __init__(self, ref: RegistryRef, credentials: Credentials | None, ca_path: str | None, insecure: bool) -> None:
        _require_dxf()
        self.ref = ref
        self.credentials = credentials
        self.tls_verify: bool | str = False if insecure else (ca_path or True)
        self.plain_allowed = insecure or ref.is_loopback
        self._dxf = self._connect(plain=False)
        self._scheme_known = False

    def _connect(self, plain: bool) -> t.Any:
        return DXF(self.ref.api_host, self.ref.repository, auth=self._authenticate, insecure=plain,
                   tlsverify=self.tls_verify, timeout=REGISTRY_TIMEOUT)

    def _authenticate(self, dxf: t.Any, response: t.Any) -> None:
        credentials = self.credentials
        dxf.authenticate(credentials.username if credentials else None, credentials.password if credentials else None, response=response)

    def call(self, what: str, request: t.Callable[[t.Any], t.Any]) -> t.Any:
        """`request(dxf)`, its errors in words; the first call settles HTTPS or plain HTTP."""
        with self.errors(what):
            if self._scheme_known:
                return request(self._dxf)
            try:
                answer = request(self._dxf)
            except requests.exceptions.SSLError as exc:
                if not self.plain_allowed or _verification_failed(exc):
                    raise
                self._dxf = self._connect(plain=True)  # the registry does not speak TLS: plain HTTP, as Docker allows here
                answer = request(self._dxf)
            self._scheme_known = True
            return answer

    def manifest(self, reference: str) -> tuple[bytes, str]:
        """The manifest's raw bytes and their digest."""
        _text, response = self.call(f"read the manifest {reference} of", lambda dxf: dxf.get_manifest_and_response(reference))
        raw = response.content
        if len(raw) > MANIFEST_SIZE_LIMIT:
            raise PullError(f"the manifest {reference} of {self.ref} is {len(raw)} bytes; a manifest is small, the registry is broken")
        return raw, "sha256:" + hashlib.sha256(raw).hexdigest()

    def manifest_digest(self, reference: str) -> str | None:
        """The digest of the manifest `reference` names, from a HEAD request (no manifest read); None when not sent."""
        digest, _response = self.call(f"ask the manifest digest {reference} of", lambda dxf: dxf.head_manifest_and_response(reference))
        return digest

    def blob_chunks(self, digest: str) -> t.Iterator[bytes]:
        """A blob, a chunk at a time; python-dxf checks its digest at its end."""
        what = f"read blob {digest} of"
        chunks = self.call(what, lambda dxf: dxf.pull_blob(digest, chunk_size=READ_CHUNK_SIZE))
        with self.errors(what):
            yield from chunks

    def layer_chunks(self, digest: str) -> t.Iterator[bytes]:
        """A layer blob, a chunk at a time, for the archive: its digest is checked by the archive's check (ArchiveCheck
        names each blob by its digest), so python-dxf's own sha256 of every byte is not taken a second time. Its
        repository request (auth flow, redirects) is used for that; a python-dxf without it gets `blob_chunks`."""
        if not callable(getattr(self._dxf, "_request", None)):
            yield from self.blob_chunks(digest)
            return
        what = f"read blob {digest} of"
        response = self.call(what, lambda dxf: dxf._request("get", "blobs/" + digest, stream=True))  # pylint: disable=protected-access
        try:
            with self.errors(what):
                yield from response.iter_content(READ_CHUNK_SIZE)
        finally:
            response.close()

    @contextlib.contextmanager
    def errors(self, what: str) -> t.Iterator[None]:
        """python-dxf's and requests' errors as PullError, naming the registry and the fix; never a credential."""
        host = self.ref.host
        try:
            yield
        except dxf_exceptions.DXFUnauthorizedError:
            origin = self.credentials.origin if self.credentials else "anonymous access (no login found)"
            raise PullError(f"registry {host} refused {origin} to {what} {self.ref}: {CREDENTIALS_HINT}") from None
        except dxf_exceptions.DXFAuthInsecureError:
            raise PullError(f"registry {host} asks for credentials over plain HTTP, which would expose them; serve it with TLS") from None
        except dxf_exceptions.DXFDigestMismatchError as exc:
            raise PullError(f"the registry served other bytes than it names to {what} {self.ref} ({exc}); its storage is damaged") from None
        except requests.exceptions.HTTPError as exc:
            raise PullError(self._http_error_message(exc, what)) from None
        except requests.exceptions.SSLError as exc:
            if _verification_failed(exc):
                raise PullError(f"the certificate of registry {host} is not trusted: give its CA with registry_ca_path, or set "
                                "registry_insecure: true to skip verification") from None
            raise PullError(f"TLS with registry {host} failed ({exc}); set registry_insecure: true if it speaks plain HTTP") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise PullError(f"cannot reach registry {host} to {what} {self.ref} ({type(exc).__name__}); "
                            "check the registry host and port in name, and that the registry runs") from None
        except dxf_exceptions.DXFError as exc:
            raise PullError(f"registry {host}: cannot {what} {self.ref} ({exc})") from None

    def _http_error_message(self, exc: t.Any, what: str) -> str:
        status = exc.response.status_code if exc.response is not None else None
        if status == 404:
            return f"registry {self.ref.host} has no {self.ref} (HTTP 404 to {what} it): check the repository, tag or digest in name"
        if status == 403:
            return f"registry {self.ref.host} denies access to {self.ref} (HTTP 403): {CREDENTIALS_HINT}"
        return f"registry {self.ref.host} answered HTTP {status} to {what} {self.ref}"


# ---------------------------------------------------------------------------------------------------------
# The source.
# ---------------------------------------------------------------------------------------------------------

class RegistrySource:
    """The image `ref` names in its registry, for `platform` (default linux/amd64) of a multi-platform index.

    `pull: missing` takes the image the project's collection records for the same reference, asking the registry
    nothing; `pull: always` asks for the manifest digest (HEAD) and takes the recorded image only when it is the same.
    """

    def __init__(self, params: t.Mapping[str, t.Any], ref: RegistryRef, run_command: RunCommand | None = None,
                 recorded: RecordedLookup | None = None) -> None:
        self.ref = ref
        self.platform = parse_platform(params.get("platform") or DEFAULT_PLATFORM)
        self.always = params.get("pull") == "always"
        credentials = find_credentials(params, ref, run_command)
        self.client = RegistryClient(ref, credentials, params.get("registry_ca_path"), params.get("registry_insecure"))
        self.manifest_digest: str | None = None
        self._recorded = recorded
        self._image: RegistryImage | None = None
        self._config: bytes | None = None

    def identify(self) -> ImageIdentity:
        recorded = self._recorded_image()
        if recorded is not None:
            self.manifest_digest = recorded.manifest_digest  # bytes, if needed, are read by this digest: the image recorded
            return ImageIdentity(image_id=recorded.image_id, created=recorded.created, repo_tags=[])
        image = self._registry_image()
        return ImageIdentity(image_id=image.image_id, created="", repo_tags=[], size=image.archive_size())

    def _recorded_image(self) -> RecordedImage | None:
        if self.ref.digest or self._recorded is None:
            return None
        recorded = self._recorded(str(self.ref))
        if recorded is None or (self.always and self.client.manifest_digest(self.ref.reference) != recorded.manifest_digest):
            return None
        return recorded

    def provenance(self) -> dict[str, str]:
        """Properties recording where the image came from: the manifest digest the reference named, and the reference."""
        self._registry_image()
        return provenance(t.cast(str, self.manifest_digest), str(self.ref))

    def created(self) -> str:
        """The config's build time: reads the config blob (small), the first blob this source reads."""
        return config_created(config_object(self._config_blob(), f"the config of {self.ref}"))

    def open_stream(self) -> t.BinaryIO:
        image = self._registry_image()
        where = f"the image {image.image_id} from {self.ref}"
        chunks = archive_chunks(image, self._config_blob(), lambda blob: self.client.layer_chunks(blob.digest), where)
        return open_chunk_stream(checked_chunks(chunks, ArchiveCheck(image.image_id, where, error=PullError)))

    def _registry_image(self) -> RegistryImage:
        if self._image is None:
            expected = self.ref.digest or self.manifest_digest
            raw, digest = self.client.manifest(expected or self.ref.reference)
            if expected and digest != expected:
                raise PullError(f"registry {self.ref.host} served a manifest with digest {digest} for {self.ref}, not {expected}; "
                                "the registry is broken or hostile")
            self.manifest_digest = digest
            document = self._parse(raw, self.ref.reference)
            if is_image_index(document):
                descriptor = self._platform_descriptor(document)
                raw, digest = self.client.manifest(descriptor["digest"])
                if digest != descriptor["digest"]:
                    raise PullError(f"registry {self.ref.host} served a manifest with digest {digest} for {descriptor['digest']}")
                document = self._parse(raw, descriptor["digest"])
            self._image = parse_image_manifest(document, f"the manifest of {self.ref}")
        return self._image

    def _parse(self, raw: bytes, reference: str) -> t.Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise PullError(f"the manifest {reference} of {self.ref} is not JSON; the registry is broken") from None

    def _platform_descriptor(self, index: dict) -> dict:
        try:
            return select_platform_descriptor(index["manifests"], self.platform, f"the image index of {self.ref}")
        except ArchiveError as exc:
            raise PullError(f"platform: {exc}") from None

    def _config_blob(self) -> bytes:
        if self._config is None:
            config = self._registry_image().config
            self._config = b"".join(self.client.blob_chunks(config.digest))
            if len(self._config) != config.size:
                raise PullError(f"the registry served {len(self._config)} bytes for the config of {self.ref}, not {config.size}")
        return self._config
