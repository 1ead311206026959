"""Run the upstream Arvados command-line tools against the emulator, the way a user runs them.

Each tool is a process of its own with the user's ARVADOS_API_* variables and a private HOME (the tools
cache under ~/.cache/arvados). arv-keepdocker shells out to `docker`, so PATH starts with a folder whose
`docker` is Debian's 20.10 client, and DOCKER_HOST names the test daemon.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import typing as t

import arvados.collection

DOCKER_CLI = pathlib.Path("/usr/bin/docker")
TOOLS_BIN = pathlib.Path(sys.executable).parent
TOOL_TIMEOUT = 600

COLLECTION_UUID = re.compile(r"[a-z0-9]{5}-4zz18-[a-z0-9]{15}")
PORTABLE_DATA_HASH = re.compile(r"[0-9a-f]{32}\+[0-9]+")
KEEP_BLOCK_SIZE = 2 ** 26
DOCKER_LINK_CLASSES = ("docker_image_hash", "docker_image_repo+tag")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Variables from the test runner's own environment that would change where the tools look.
_INHERITED_PREFIXES = ("ARVADOS_", "DOCKER_", "XDG_")
_INHERITED_NAMES = frozenset({"CACHE_DIRECTORY", "CONFIGURATION_DIRECTORY", "STATE_DIRECTORY"})


def docker_shim(bin_dir: pathlib.Path) -> pathlib.Path:
    """A folder whose only entry is `docker` -> Debian's client, to put first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "docker"
    if not link.is_symlink():
        link.symlink_to(DOCKER_CLI)
    return bin_dir


def clean_environment() -> dict[str, str]:
    """The runner's environment without anything that points the tools at another cluster, daemon or cache."""
    return {
        name: value for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES) and name not in _INHERITED_NAMES
    }


class UserShell:
    """One user's terminal: Arvados credentials, HOME, and optionally a Docker daemon."""

    def __init__(self, arvados_env: t.Mapping[str, str], workdir: pathlib.Path, name: str,
                 docker_env: t.Mapping[str, str] | None = None) -> None:
        self.home = workdir / f"home-{name}"
        self.home.mkdir(parents=True, exist_ok=True)
        bin_dir = docker_shim(workdir / "bin")
        self.env = clean_environment()
        self.env.update(arvados_env)
        self.env.update(docker_env or {})
        self.env.update({
            "ARVADOS_API_HOST_INSECURE": "1",
            "HOME": str(self.home),
            "PATH": os.pathsep.join([str(bin_dir), str(TOOLS_BIN), os.environ.get("PATH", "")]),
        })

    @classmethod
    def for_user(cls, emulator: t.Any, user: str, workdir: pathlib.Path, dockerd: t.Any = None) -> UserShell:
        """A shell logged in as one of the emulator's users."""
        docker_env = dockerd.env() if dockerd is not None else None
        return cls(emulator.env(user=user), workdir, user, docker_env)

    @classmethod
    def for_token(cls, emulator: t.Any, token: str, workdir: pathlib.Path, name: str) -> UserShell:
        """A shell that holds an arbitrary token for the emulator's API host."""
        return cls({"ARVADOS_API_HOST": emulator.api_host, "ARVADOS_API_TOKEN": token}, workdir, name)

    def run(self, tool: str, *args: str, timeout: float = TOOL_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run one of the upstream tools from the venv, as a separate process."""
        return subprocess.run(
            [str(TOOLS_BIN / tool), *args], env=self.env, cwd=self.home,
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def keepdocker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("arv-keepdocker", *args)

    def put(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("arv-put", "--no-progress", *args)

    def get(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("arv-get", *args)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed tool said, for assertion messages."""
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def printed_uuid(result: subprocess.CompletedProcess[str]) -> str:
    """The collection uuid a successful arv-put / arv-keepdocker printed as its only stdout line."""
    assert result.returncode == 0, describe(result)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and COLLECTION_UUID.fullmatch(lines[0]), describe(result)
    return lines[0]


def escape_manifest_name(name: str) -> str:
    """A file name as a manifest spells it (space, colon and backslash as octal escapes)."""
    return name.replace("\\", "\\134").replace(" ", "\\040").replace(":", "\\072")


def block_locators(path: pathlib.Path) -> list[str]:
    """`md5+size` of each 64 MiB Keep block arv-put cuts the file into."""
    locators = []
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(KEEP_BLOCK_SIZE), b""):
            locators.append(f"{hashlib.md5(block).hexdigest()}+{len(block)}")
    return locators


def portable_data_hash(stripped_manifest: str) -> str:
    """The PDH of a manifest whose locators are already cut to md5+size."""
    text = stripped_manifest.encode()
    return f"{hashlib.md5(text).hexdigest()}+{len(text)}"


def image_archive_summary(archive: pathlib.Path) -> dict[str, t.Any]:
    """What identifies the image inside a `docker save` tarball: config digest, layer digests, created time."""
    with tarfile.open(archive) as tar:
        manifest, = json.load(tar.extractfile("manifest.json"))
        config_bytes = tar.extractfile(manifest["Config"]).read()
        layer_digests = [
            "sha256:" + hashlib.sha256(tar.extractfile(layer).read()).hexdigest() for layer in manifest["Layers"]
        ]
    config = json.loads(config_bytes)
    return {
        "config_digest": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        "layer_digests": layer_digests,
        "diff_ids": config["rootfs"]["diff_ids"],
        "created": config.get("created"),
    }


def docker_links(api: t.Any, head_uuid: str) -> list[dict[str, t.Any]]:
    """The docker_image_hash / docker_image_repo+tag links on one collection, as the API returns them."""
    return api.links().list(
        filters=[["head_uuid", "=", head_uuid], ["link_class", "in", list(DOCKER_LINK_CLASSES)]],
        limit=1000,
    ).execute()["items"]


def links_by_class(links: t.Iterable[dict[str, t.Any]]) -> dict[str, list[dict[str, t.Any]]]:
    grouped: dict[str, list[dict[str, t.Any]]] = {}
    for link in links:
        grouped.setdefault(link["link_class"], []).append(link)
    return grouped


def collection_files(api: t.Any, collection_uuid: str) -> dict[str, int]:
    """Top-level file names and sizes of a collection, read from its manifest by the SDK."""
    reader = arvados.collection.CollectionReader(collection_uuid, api_client=api)
    return {name: reader.find(name).size() for name in reader.keys()}


# The emulator's request log: {"entries": [{"service": "api"|"keep", "method", "path", "method_override", ...}]}.
# "method" is the effective one, so a POST carrying X-HTTP-Method-Override: GET is logged as GET.

def logged_requests(log: dict[str, t.Any], service: str, method: str | None = None,
                    path: str | None = None) -> list[dict[str, t.Any]]:
    return [
        entry for entry in log["entries"]
        if entry["service"] == service
        and (method is None or entry["method"] == method)
        and (path is None or entry["path"] == path)
    ]


def count_requests(log: dict[str, t.Any], method: str, path: str) -> int:
    """How many API requests of this method reached this exact path."""
    return len(logged_requests(log, "api", method, path))


def write_requests(log: dict[str, t.Any]) -> list[str]:
    """Every API request that could change something, as 'METHOD path'."""
    return [f"{entry['method']} {entry['path']}" for entry in logged_requests(log, "api") if entry["method"] in WRITE_METHODS]


def keep_puts(log: dict[str, t.Any]) -> list[str]:
    """The paths (locators) of Keep PUT requests."""
    return [entry["path"] for entry in logged_requests(log, "keep", "PUT")]


def method_override_requests(log: dict[str, t.Any], path: str) -> list[dict[str, t.Any]]:
    """API requests to path that arrived as POST with X-HTTP-Method-Override: GET."""
    return [entry for entry in logged_requests(log, "api", "GET", path) if entry["method_override"]]


def create_project(api: t.Any, prefix: str) -> str:
    """A new project of the API client's user, with a name unique to this run; returns its uuid."""
    name = f"{prefix} {os.urandom(4).hex()}"
    return api.groups().create(body={"group": {"name": name, "group_class": "project"}}).execute()["uuid"]


def grant(api: t.Any, grantee_uuid: str, head_uuid: str, level: str = "can_read") -> dict[str, t.Any]:
    """A permission link: grantee (tail) gets `level` on head (a project, or a user and maybe what it owns)."""
    return api.links().create(body={"link": {
        "link_class": "permission", "name": level, "tail_uuid": grantee_uuid, "head_uuid": head_uuid,
    }}).execute()
