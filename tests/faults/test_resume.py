"""An upload killed (SIGKILL) part way, then run again: blocks Keep confirmed are not sent twice.

The module remembers the signed locator of each block Keep confirmed in the host's cache folder, in a file of its
own per (cluster, token, image id); the next run offers each cached locator to Keep (HEAD, which checks the
signature) before sending the block. An expired entry, or one Keep refuses (another cluster's signature, another
token's), means the block is sent again, and the run succeeds. What was sent is counted from the emulator's request
log (Keep PUTs and their bytes). The module runs shipped (AnsiballZ), so that the process killed is the module's alone.
"""
from __future__ import annotations

import json
import os
import re
import stat
import time

import pytest

from cluster import ClusterView, ExpectedImage
from hosts import Host, new_project
from playbooks import SHIPPED
from resume_files import block_size, cache_folder, cache_path, cached_blocks, head_statuses, keep_puts, put_bytes, put_hashes
from test_interruption import kill_when

MIB = 1024 * 1024
# Two Keep blocks (64 MiB each): the first is confirmed while the second is held.
TWO_BLOCK_PAYLOAD = 70 * MIB
PUT_HOLD_SECONDS = 2
SIGNATURE = re.compile(r"\+A([0-9a-f]{40})@([0-9a-f]{8})")
# The benchmark case of the issue: 1 GiB (16 blocks), killed once Keep has confirmed 10 of them.
GIB = 1024 * MIB
CONFIRMED_BEFORE_KILL = 10


@pytest.fixture()
def execution() -> str:
    return SHIPPED


@pytest.fixture()
def delivery() -> str:
    return "option"


def killed_after_confirmed_blocks(host: Host, image: ExpectedImage, project: str, blocks: int) -> dict[str, str]:
    """Start an upload, SIGKILL it once the cache holds `blocks` confirmed blocks; returns the cache as left."""
    emulator = host.emulator
    emulator.set_latency("PUT", "/*", PUT_HOLD_SECONDS, service="keep")
    emulator.reset_request_log()
    running = host.start({"name": image.repo_tag, "project_uuid": project})
    path = cache_path(host, image.image_id)
    kill_when(running, lambda: len(cached_blocks(path)) >= blocks, lambda: None)
    killed = host.finish(running)
    assert killed.failed and killed.result.get("rc") == -9, killed.describe()
    time.sleep(PUT_HOLD_SECONDS + 1)
    emulator.clear_faults()
    return cached_blocks(path)


def run_again(host: Host, image: ExpectedImage, project: str) -> None:
    host.emulator.reset_request_log()
    rerun = host.module({"name": image.repo_tag, "project_uuid": project})
    assert rerun.rc == 0 and rerun.result.get("changed"), rerun.describe()
    collection = ClusterView(host.emulator.api("admin")).assert_converged(project, image)
    assert rerun.result["collection_uuid"] == collection["uuid"]


def test_a_resumed_upload_sends_only_blocks_keep_had_not_confirmed(host: Host, build_image) -> None:
    image = build_image(size=TWO_BLOCK_PAYLOAD)
    project = new_project(host.emulator, "resumed upload")
    confirmed = killed_after_confirmed_blocks(host, image, project, 1)
    path = cache_path(host, image.image_id)
    # The cache: the owner's alone, signed locators only (as arv-put's), no token nor any part of one.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_folder(host).stat().st_mode) == 0o700
    text = path.read_text(encoding="utf-8")
    assert not [secret for secret in host.secrets if secret in text]
    assert set(json.loads(text)) == {"blocks"} and all(SIGNATURE.search(locator) for locator in confirmed.values())

    run_again(host, image, project)
    emulator = host.emulator
    assert head_statuses(emulator) == [200] * len(confirmed)
    assert not put_hashes(emulator) & {key.split("+")[0] for key in confirmed}
    assert put_bytes(emulator) == image.size - sum(block_size(key) for key in confirmed)
    assert not path.exists(), "the cache of a finished upload is left behind"


def expire(locator: str) -> str:
    return SIGNATURE.sub(lambda found: f"+A{found.group(1)}@{int(time.time()) - 60:08x}", locator)


def sign_elsewhere(locator: str) -> str:
    """The locator as another cluster (another blob signing key) would have signed it."""
    return SIGNATURE.sub(lambda found: f"+A{os.urandom(20).hex()}@{found.group(2)}", locator)


@pytest.mark.parametrize("stale", ["expired", "another cluster", "another token"])
def test_a_stale_or_foreign_cache_means_sending_again(host: Host, build_image, stale: str) -> None:
    image = build_image(size=TWO_BLOCK_PAYLOAD)
    project = new_project(host.emulator, "stale resume cache")
    confirmed = killed_after_confirmed_blocks(host, image, project, 1)
    path = cache_path(host, image.image_id)
    rerun_host = host
    if stale == "another token":
        # Another token of the same user finds the file (as if it were its own): Keep refuses its signatures.
        rerun_host = Host(host.runner, host.emulator, host.docker_host, host.delivery, host.emulator.mint_token("alice", None))
        os.replace(path, cache_path(rerun_host, image.image_id))
    else:
        rewrite = expire if stale == "expired" else sign_elsewhere
        path.write_text(json.dumps({"blocks": {key: rewrite(locator) for key, locator in confirmed.items()}}), encoding="utf-8")

    run_again(rerun_host, image, project)
    emulator = host.emulator
    # An expired entry is not even offered; Keep answers another key's or another token's signature with 400.
    assert head_statuses(emulator) == ([] if stale == "expired" else [400] * len(confirmed))
    assert len(keep_puts(emulator)) == image.blocks
    assert put_bytes(emulator) == image.size
    assert not cache_path(rerun_host, image.image_id).exists()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("RESUME_BENCH"), reason="a benchmark (1 GiB): RESUME_BENCH=1 runs it")
def test_one_gib_killed_after_ten_confirmed_blocks_sends_none_of_them_again(host: Host, build_image, record_property) -> None:
    image = build_image(size=GIB)
    project = new_project(host.emulator, "resumed 1 GiB upload")
    started = time.monotonic()
    confirmed = killed_after_confirmed_blocks(host, image, project, CONFIRMED_BEFORE_KILL)
    first_run = time.monotonic() - started
    sent_before_kill = put_bytes(host.emulator)
    started = time.monotonic()
    run_again(host, image, project)
    rerun = time.monotonic() - started
    emulator = host.emulator
    resent = put_hashes(emulator) & {key.split("+")[0] for key in confirmed}
    figures = {"image bytes": image.size, "blocks": image.blocks, "confirmed before the kill": len(confirmed),
               "PUT bytes before the kill": sent_before_kill, "re-run PUT requests": len(keep_puts(emulator)),
               "re-run PUT bytes": put_bytes(emulator), "re-run HEAD statuses": head_statuses(emulator),
               "confirmed blocks sent again": len(resent), "first run until killed (s)": round(first_run, 1),
               "re-run (s)": round(rerun, 1)}
    print(f"\nRESUME_BENCH {json.dumps(figures)}")
    for name, value in figures.items():
        record_property(name, value)
    assert len(confirmed) >= CONFIRMED_BEFORE_KILL and not resent
    assert put_bytes(emulator) == image.size - sum(block_size(key) for key in confirmed)
