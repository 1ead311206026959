"""Small helpers the functional tests share: loading this checkout's module utils or its whole collection, payload
files and their digests, and Docker image collections made through the API."""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pathlib
import shutil
import sys
import types
import typing as t

MIB = 1 << 20
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PLACEHOLDER_BLOCK = b"not really a docker image\n"


def load_module_util(path: pathlib.Path, module_name: str) -> types.ModuleType:
    """The module util from this checkout, without needing the tree staged under ansible_collections/."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def random_file(path: pathlib.Path, size: int) -> pathlib.Path:
    """Writes `size` random bytes in chunks, so large payloads never sit in memory whole."""
    with path.open("wb") as stream:
        remaining = size
        while remaining:
            chunk = min(remaining, 8 * MIB)
            stream.write(os.urandom(chunk))
            remaining -= chunk
    return path


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def importable_collection(stage_root: pathlib.Path) -> t.Iterator[pathlib.Path]:
    """This checkout's plugins staged under `stage_root` as ansible_collections/arvados/cluster, importable as
    `ansible_collections.arvados.cluster...` and loadable by Ansible's plugin loaders until the block ends."""
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    target = stage_root / "ansible_collections" / "arvados" / "cluster"
    shutil.copytree(REPO_ROOT / "plugins", target / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    (target / "meta").mkdir()
    shutil.copy2(REPO_ROOT / "meta" / "runtime.yml", target / "meta" / "runtime.yml")
    _AnsibleCollectionFinder(paths=[str(stage_root)])._install()
    try:
        yield stage_root
    finally:
        _AnsibleCollectionFinder._remove()
        for name in [name for name in sys.modules if name.split(".", 1)[0] == "ansible_collections"]:
            del sys.modules[name]


def v2_image_file(hex_digits: str) -> str:
    """The one file of a Docker image collection in the v2 format."""
    return f"sha256:{hex_digits}.tar"


def v1_image_file(hex_digits: str) -> str:
    """The one file of a Docker image collection in the v1 format."""
    return f"{hex_digits}.tar"


class ImageCollections:
    """Docker image collections and their links, made cheaply through one user's API client.

    Every manifest points at one small Keep block, put once and signed for that user; a collection's content
    differs from another's by its file names only.
    """

    def __init__(self, api: t.Any, block: bytes = PLACEHOLDER_BLOCK) -> None:
        self.api = api
        self.block = block
        self.locator = api.keep.put(block)

    def collection(self, *file_names: str, owner_uuid: str | None = None) -> dict[str, t.Any]:
        files = " ".join(f"0:{len(self.block)}:{_manifest_name(name)}" for name in file_names)
        body: dict[str, t.Any] = {"manifest_text": f". {self.locator} {files}\n", "name": f"image {os.urandom(6).hex()}"}
        if owner_uuid is not None:
            body["owner_uuid"] = owner_uuid
        return self.api.collections().create(body={"collection": body}, ensure_unique_name=True).execute()

    def link(self, link_class: str, name: str, head_uuid: str, owner_uuid: str | None = None,
             image_timestamp: str | None = None, tail_uuid: str | None = None) -> dict[str, t.Any]:
        body: dict[str, t.Any] = {"link_class": link_class, "name": name, "head_uuid": head_uuid,
                                  "properties": {"image_timestamp": image_timestamp} if image_timestamp else {}}
        if owner_uuid is not None:
            body["owner_uuid"] = owner_uuid
        if tail_uuid is not None:
            body["tail_uuid"] = tail_uuid
        return self.api.links().create(body={"link": body}).execute()

    def image(self, hex_digits: str, owner_uuid: str | None = None, image_timestamp: str | None = None,
              repo_tags: t.Iterable[str] = ()) -> dict[str, t.Any]:
        """A v2 image collection with its hash link and a repo+tag link per name, all owned by `owner_uuid`."""
        collection = self.collection(v2_image_file(hex_digits), owner_uuid=owner_uuid)
        self.link("docker_image_hash", f"sha256:{hex_digits}", collection["uuid"], owner_uuid, image_timestamp)
        for repo_tag in repo_tags:
            self.link("docker_image_repo+tag", repo_tag, collection["uuid"], owner_uuid, image_timestamp)
        return collection


def _manifest_name(name: str) -> str:
    return name.replace("\\", "\\134").replace(" ", "\\040").replace(":", "\\072")
