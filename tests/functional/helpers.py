"""Small helpers the functional tests share: loading this checkout's module utils, payload files and their digests."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import sys
import types

MIB = 1 << 20


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
