"""Registries for `source: registry`: Debian's docker-registry with TLS from the tests' own CA and htpasswd basic auth,
or behind a small bearer-token realm (Docker's token protocol) that the harness serves; pushing with skopeo from the
private dockerd; an image index built through the registry API; the registry's log read for request counts.
"""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import pathlib
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from harness.docker_env import DockerDaemon, Registry, _registry_config
from harness.docker_tls import DockerTLSFiles, _builder, ensure_docker_tls

SKOPEO = "/usr/bin/skopeo"
USERNAME = "registry-user"
PASSWORD = "registry-pass-5f3c9e"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
ISSUER = "arvados-cluster-tests"
SERVICE = "test-registry"


class SecureRegistry(Registry):
    """docker-registry on 127.0.0.1 with TLS from the tests' CA, and htpasswd basic auth or (token=True) bearer tokens."""

    def __init__(self, state_dir: pathlib.Path, token: bool = False) -> None:
        super().__init__(state_dir)
        self.token = token
        self.tls: DockerTLSFiles = ensure_docker_tls(state_dir / "tls")
        self.realm: TokenRealm | None = None

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    @property
    def ca_path(self) -> pathlib.Path:
        return self.tls.ca

    def _answers(self, address: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        try:
            with urllib.request.urlopen(f"https://{address}/v2/", timeout=2, context=context):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except (urllib.error.URLError, OSError):
            return False

    def _start_on(self, port: int, timeout: float) -> Registry:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.token and self.realm is None:
            self.realm = TokenRealm(self.state_dir / "realm", self.tls).start()
        config = _registry_config(self.state_dir / "data", port, "s3cr3t" + str(port))
        config += f"  tls:\n    certificate: {json.dumps(str(self.tls.server_cert))}\n    key: {json.dumps(str(self.tls.server_key))}\n"
        config += self._auth_config()
        self.config_path.write_text(config, encoding="utf-8")
        address = f"127.0.0.1:{port}"
        self._launch(["/usr/bin/docker-registry", "serve", str(self.config_path)], {"address": address},
                     lambda: self._answers(address), timeout, "docker-registry (TLS)")
        return self

    def _auth_config(self) -> str:
        if self.realm is not None:
            return (f"auth:\n  token:\n    realm: {self.realm.url}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
                    f"    rootcertbundle: {json.dumps(str(self.realm.cert_path))}\n")
        htpasswd = self.state_dir / "htpasswd"
        htpasswd.write_bytes(USERNAME.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)) + b"\n")
        return f"auth:\n  htpasswd:\n    realm: test-registry\n    path: {json.dumps(str(htpasswd))}\n"

    def stop(self) -> None:
        super().stop()
        if self.realm is not None:
            self.realm.stop()
            self.realm = None

    def push(self, dockerd: DockerDaemon, ref: str, target: str | None = None) -> str:
        """Copies `ref` from the private dockerd into this registry with skopeo; returns the pushed reference."""
        pushed = f"{self.address}/{target or ref}"
        cert_dir = self.state_dir / "skopeo-certs"  # skopeo reads the CAs of a folder from its *.crt files
        cert_dir.mkdir(exist_ok=True)
        (cert_dir / "ca.crt").write_bytes(self.tls.ca.read_bytes())
        skopeo("copy", "--src-daemon-host", dockerd.docker_host, "--dest-cert-dir", str(cert_dir),
               "--dest-creds", f"{USERNAME}:{PASSWORD}", f"docker-daemon:{ref}", f"docker://{pushed}")
        return pushed

    def api(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
            accept: str = MANIFEST_TYPES) -> tuple[bytes, dict[str, str]]:
        """One request to the registry's API with basic auth, or a bearer token from the realm."""
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        request.add_header("Accept", accept)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.realm is not None:
            request.add_header("Authorization", "Bearer " + self.realm.token_for(["/".join(path.split("/")[2:-2])]))
        else:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(self.tls.ca)), timeout=30) as response:
            return response.read(), dict(response.headers)

    def push_index(self, repository: str, tags_by_platform: dict[str, str], tag: str) -> str:
        """An OCI image index `repository:tag` of the images at `repository:<tag>` for each platform; returns its digest."""
        manifests = []
        for platform, image_tag in tags_by_platform.items():
            raw, headers = self.api("GET", f"/v2/{repository}/manifests/{image_tag}")
            os_name, architecture = platform.split("/")[:2]
            manifests.append({"mediaType": headers["Content-Type"], "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                              "size": len(raw), "platform": {"os": os_name, "architecture": architecture}})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
        self.api("PUT", f"/v2/{repository}/manifests/{tag}", index, OCI_INDEX)
        return "sha256:" + hashlib.sha256(index).hexdigest()

    def manifest_digest(self, repository: str, tag: str) -> str:
        raw, _headers = self.api("GET", f"/v2/{repository}/manifests/{tag}", accept=MANIFEST_TYPES + ", " + OCI_INDEX)
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def blob_path(self, digest: str) -> pathlib.Path:
        hex_digits = digest.split(":", 1)[1]
        return self.state_dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hex_digits[:2] / hex_digits / "data"

    def requests(self, method: str, part: str) -> int:
        """How many requests the registry logged as completed with `method` and `part` (/blobs/, /manifests/) in the path."""
        count = 0
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if "response completed" in line and f"http.request.method={method}" in line and part in line:
                count += 1
        return count


def skopeo(*args: str) -> str:
    result = subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args[:1])} failed: {result.stderr.strip()}")
    return result.stdout


# ---------------------------------------------------------------------------------------------------------------
# A bearer-token realm: GET /token?service=...&scope=repository:<name>:pull,push with basic auth -> {"token": JWT}.
# ---------------------------------------------------------------------------------------------------------------

class TokenRealm:
    """Docker's token protocol, served over TLS from the tests' CA; tokens are ES256 JWTs carrying their certificate."""

    def __init__(self, state_dir: pathlib.Path, tls: DockerTLSFiles) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.cert_path = state_dir / "token-signer.pem"
        self.tls = tls
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")])
        self.cert = _builder(name, name, self.key.public_key(), self.key).sign(self.key, hashes.SHA256())
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.token_requests = 0
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> TokenRealm:
        realm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                realm.token_requests += 1
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                if self.headers.get("Authorization") != "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode():
                    self.send_response(401)
                    self.end_headers()
                    return
                scopes = [scope.split(":") for scope in query.get("scope", [])]
                body = json.dumps({"token": realm.token_for([scope[1] for scope in scopes if len(scope) == 3])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.tls.server_cert), str(self.tls.server_key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def token_for(self, names: list[str]) -> str:
        """A JWT granting pull and push on the repositories `names`."""
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": USERNAME, "aud": SERVICE, "exp": now + 600, "nbf": now - 10, "iat": now,
                  "jti": hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:16],
                  "access": [{"type": "repository", "name": name, "actions": ["pull", "push"]} for name in names]}
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
