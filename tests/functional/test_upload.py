"""The Keep stream writer against the emulator: bytes, blocks and PDH as arv-put makes them, failures, memory."""
from __future__ import annotations

import hashlib
import importlib
import json
import pathlib
import random
import subprocess
import sys
import types
import typing as t

import arvados.collection
import pytest

from helpers import importable_collection, random_file, sha256_file
from upstream import UserShell, describe, portable_data_hash, printed_uuid

UPLOAD_MODULE = "ansible_collections.arvados.cluster.plugins.module_utils._upload"
MIB = 1 << 20
KEEP_BLOCK_SIZE = 64 * MIB
ESCAPED_COLON = "\\072"
# Few retries, so an injected failure ends the test in seconds rather than minutes.
NUM_RETRIES = 1
# The module's whole process, Python + arvados + docker SDK included, must stay within this (decimal MB).
PEAK_RSS_LIMIT_BYTES = 256 * 1000 * 1000


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> t.Iterator[pathlib.Path]:
    """A copy of this checkout staged as ansible_collections/arvados/cluster, importable during this file's tests."""
    with importable_collection(tmp_path_factory.mktemp("staged")) as stage_root:
        yield stage_root


@pytest.fixture(scope="module")
def upload(staged) -> types.ModuleType:
    return importlib.import_module(UPLOAD_MODULE)


def image_file_name(path: pathlib.Path) -> str:
    return f"sha256:{sha256_file(path)}.tar"


def stripped_manifest(manifest_text: str) -> str:
    """The manifest with every locator cut to md5+size, as the server hashes it for the PDH."""
    words = [word.split("+A", 1)[0] for word in manifest_text.split(" ")]
    return " ".join(words)


def piped(path: pathlib.Path) -> subprocess.Popen:
    """The file's bytes through a pipe, as `docker save` delivers an image."""
    return subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)


def collections_named(api, name: str) -> list[dict]:
    return api.collections().list(filters=[["name", "=", name]], select=["uuid"]).execute()["items"]


def arv_put_portable_data_hash(emulator, tmp_path: pathlib.Path, source: pathlib.Path, file_name: str) -> str:
    shell = UserShell.for_user(emulator, "alice", tmp_path)
    result = shell.put("--no-resume", "--no-cache", "--filename", file_name, str(source))
    uuid = printed_uuid(result)
    return emulator.api(user="alice").collections().get(uuid=uuid).execute()["portable_data_hash"]


@pytest.fixture()
def alice_api(emulator):
    return emulator.api(user="alice")


@pytest.fixture()
def no_faults(emulator):
    emulator.clear_faults()
    yield
    emulator.clear_faults()


@pytest.mark.slow
def test_three_blocks_round_trip_with_arv_puts_portable_data_hash(upload, emulator, alice_api, tmp_path):
    source = random_file(tmp_path / "image.tar", 150 * 1000 * 1000)
    file_name = image_file_name(source)

    with piped(source) as cat:
        manifest_text = upload.write_stream_to_keep(alice_api.keep, cat.stdout, file_name, num_retries=NUM_RETRIES)
    assert cat.returncode == 0

    locators = manifest_text.split(" ")[1:-1]
    assert [int(locator.split("+")[1]) for locator in locators] == [KEEP_BLOCK_SIZE, KEEP_BLOCK_SIZE, 150 * 1000 * 1000 - 2 * KEEP_BLOCK_SIZE]
    assert manifest_text.endswith(f" 0:{150 * 1000 * 1000}:{file_name.replace(':', ESCAPED_COLON)}\n")

    collection = alice_api.collections().create(
        body={"name": "stream writer round trip", "manifest_text": manifest_text}, ensure_unique_name=True,
    ).execute()
    assert collection["portable_data_hash"] == portable_data_hash(stripped_manifest(manifest_text))
    assert collection["portable_data_hash"] == arv_put_portable_data_hash(emulator, tmp_path, source, file_name)

    reader = arvados.collection.Collection(collection["uuid"], api_client=alice_api)
    digest = hashlib.sha256()
    with reader.open(file_name, "rb") as stored:
        for chunk in iter(lambda: stored.read(8 * MIB), b""):
            digest.update(chunk)
    assert digest.hexdigest() == sha256_file(source)


def test_empty_stream_matches_arv_put(upload, emulator, alice_api, tmp_path):
    source = tmp_path / "empty.tar"
    source.write_bytes(b"")
    file_name = image_file_name(source)
    emulator.reset_request_log()
    with source.open("rb") as stream:
        manifest_text = upload.write_stream_to_keep(alice_api.keep, stream, file_name, num_retries=NUM_RETRIES)
    assert manifest_text == f". d41d8cd98f00b204e9800998ecf8427e+0 0:0:{file_name.replace(':', ESCAPED_COLON)}\n"
    assert not [request for request in emulator.request_log()["counts"].get("keep", {}) if request.startswith("PUT ")]
    collection = alice_api.collections().create(body={"name": "empty stream", "manifest_text": manifest_text}).execute()
    assert collection["portable_data_hash"] == arv_put_portable_data_hash(emulator, tmp_path, source, file_name)


def alice_collection_count(api) -> int:
    return api.collections().list(limit=0, count="exact").execute()["items_available"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", [
    pytest.param({"status": 500}, id="status-500"),
    pytest.param({"drop_after_bytes": MIB}, id="dropped-connection"),
])
def test_failed_block_put_raises_and_no_collection_is_saved(upload, emulator, alice_api, tmp_path, no_faults, fault):
    source = random_file(tmp_path / "image.tar", KEEP_BLOCK_SIZE + 3 * MIB)
    with source.open("rb") as stream:
        stream.seek(KEEP_BLOCK_SIZE)
        second_block_md5 = hashlib.md5(stream.read()).hexdigest()
    # More failures than the client makes attempts: every try of the second block fails.
    emulator.inject_fault("PUT", f"/{second_block_md5}*", count=100, service="keep", **fault)
    collections_before = alice_collection_count(alice_api)

    with source.open("rb") as stream, pytest.raises(upload.KeepUploadError) as raised:
        manifest_text = upload.write_stream_to_keep(
            alice_api.keep, stream, image_file_name(source), blocks_in_flight=1, num_retries=NUM_RETRIES,
        )
        alice_api.collections().create(body={"name": "never saved", "manifest_text": manifest_text}).execute()

    assert raised.value.bytes_written == KEEP_BLOCK_SIZE
    assert f"{KEEP_BLOCK_SIZE} bytes had been written" in str(raised.value)
    assert "block 2" in str(raised.value)
    assert alice_collection_count(alice_api) == collections_before
    assert not collections_named(alice_api, "never saved")


# Streams generated bytes through the writer in a process of its own, as a module would, and reports its peak RSS.
MEMORY_PROBE = r"""
import importlib, io, json, random, resource, sys
import arvados
import docker  # noqa: F401 (a module process has both SDKs loaded)

sys.path.insert(0, sys.argv[1])  # the staged collection, as ansible_collections/arvados/cluster
upload = importlib.import_module("ansible_collections.arvados.cluster.plugins.module_utils._upload")


class GeneratedStream(io.RawIOBase):
    def __init__(self, size, seed):
        super().__init__()
        self._left = size
        self._random = random.Random(seed)

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self._left, 1 << 20)
        buffer[:count] = self._random.randbytes(count)
        self._left -= count
        return count


def peak_rss_kib():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec, so a child of a
    # big pytest process would report the parent's peak. VmHWM belongs to this process image alone.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


api = arvados.api("v1")
start_kib = peak_rss_kib()
manifest_text = upload.write_stream_to_keep(api.keep, GeneratedStream(int(sys.argv[2]), int(sys.argv[3])), "generated.tar",
                                            num_retries=int(sys.argv[4]))
print(json.dumps({"start_kib": start_kib, "peak_kib": peak_rss_kib(), "manifest_text": manifest_text,
                  "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def generated_block_locators(size: int, seed: int) -> list[str]:
    """md5+size of each Keep block of what MEMORY_PROBE generates."""
    generator = random.Random(seed)
    locators = []
    for offset in range(0, size, KEEP_BLOCK_SIZE):
        block_length = min(KEEP_BLOCK_SIZE, size - offset)
        digest = hashlib.md5()
        for start in range(0, block_length, MIB):
            digest.update(generator.randbytes(min(MIB, block_length - start)))
        locators.append(f"{digest.hexdigest()}+{block_length}")
    return locators


@pytest.mark.slow
def test_peak_memory_of_a_400_mb_stream_stays_under_256_mb(staged, emulator, alice_api, tmp_path):
    size, seed = 400 * 1000 * 1000, 488
    env = UserShell.for_user(emulator, "alice", tmp_path).env
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(staged), str(size), str(seed), str(NUM_RETRIES)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert probe.returncode == 0, describe(probe)
    report = json.loads(probe.stdout)

    assert report["peak_kib"] * 1024 <= PEAK_RSS_LIMIT_BYTES, report
    expected_locators = generated_block_locators(size, seed)
    assert stripped_manifest(report["manifest_text"]) == f". {' '.join(expected_locators)} 0:{size}:generated.tar\n"
    collection = alice_api.collections().create(
        body={"name": "generated 400 MB", "manifest_text": report["manifest_text"]}, ensure_unique_name=True,
    ).execute()
    assert collection["portable_data_hash"] == portable_data_hash(stripped_manifest(report["manifest_text"]))
