# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The pure parts of `source: arvados`: a manifest's blocks and its re-signing, arv-copy's cluster file, which options
a task may set, the source connection's precedence, and the copy's bounded concurrency and first-failure stop."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._block_copy import (
    BlockCopy,
    block_key,
    copy_blocks,
    manifest_blocks,
    resigned_manifest,
)
from ansible_collections.arvados.cluster.plugins.module_utils._cluster_source import (
    cluster_config,
    refused_source_options,
    source_connection,
)
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError, KeepUploadError, OptionError
from ansible_collections.arvados.cluster.plugins.module_utils._keep_stream import ExactBody, KeepStreamError

A = "a" * 32
B = "b" * 32
SOURCE_SIGNATURE = "+A" + "1" * 40 + "@6a000000"
MANIFEST = (f". {A}+67108864{SOURCE_SIGNATURE} {B}+10{SOURCE_SIGNATURE} 0:67108874:sha256\\072{'c' * 64}.tar\n"
            f"./other {A}+67108864{SOURCE_SIGNATURE} 0:67108864:again.tar\n")


def test_the_blocks_of_a_manifest_once_each_in_order():
    assert manifest_blocks(MANIFEST) == [f"{A}+67108864{SOURCE_SIGNATURE}", f"{B}+10{SOURCE_SIGNATURE}"]
    assert block_key(f"{B}+10{SOURCE_SIGNATURE}") == f"{B}+10"
    assert block_key("0:10:file.tar") is None and block_key("./other") is None


def test_a_resigned_manifest_differs_only_in_signatures():
    signed = {f"{A}+67108864": f"{A}+67108864+A{'2' * 40}@6b000000", f"{B}+10": f"{B}+10+A{'3' * 40}@6b000000"}
    resigned = resigned_manifest(MANIFEST, signed)
    assert SOURCE_SIGNATURE not in resigned
    assert resigned.replace(f"+A{'2' * 40}@6b000000", SOURCE_SIGNATURE).replace(f"+A{'3' * 40}@6b000000", SOURCE_SIGNATURE) == MANIFEST


def test_arv_copy_cluster_file(tmp_path):
    folder = tmp_path / "arvados"
    folder.mkdir()
    (folder / "aaaaa.conf").write_text("# a comment\nARVADOS_API_HOST=a.example:443\nARVADOS_API_TOKEN = v2/x/y\n\n", encoding="utf-8")
    assert cluster_config("aaaaa", {"XDG_CONFIG_HOME": str(tmp_path)}) == {"ARVADOS_API_HOST": "a.example:443", "ARVADOS_API_TOKEN": "v2/x/y"}
    with pytest.raises(OptionError, match=r"source_cluster: cannot read .*bbbbb\.conf"):
        cluster_config("bbbbb", {"XDG_CONFIG_HOME": str(tmp_path)})
    with pytest.raises(OptionError, match="not a cluster id"):
        cluster_config("../etc", {"XDG_CONFIG_HOME": str(tmp_path)})


def params(**given):
    return {"source": "arvados", "source_api_host": None, "source_api_token": None, "source_api_insecure": None,
            "source_cluster": None, "num_retries": 2, "api_timeout": 7, **given}


def test_source_options_are_refused_with_another_source():
    assert refused_source_options(params(source="local", source_api_host="h", source_cluster="aaaaa")) == ["source_api_host", "source_cluster"]
    assert refused_source_options(params(source="arvados", source_api_host="h")) == []


def test_the_source_connection_takes_options_then_the_cluster_file(tmp_path, monkeypatch):
    (tmp_path / "arvados").mkdir()
    settings = "ARVADOS_API_HOST=file.example\nARVADOS_API_TOKEN=fromfile\nARVADOS_API_HOST_INSECURE=1\n"
    (tmp_path / "arvados" / "aaaaa.conf").write_text(settings, encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    options = source_connection(params(source_cluster="aaaaa", source_api_token="fromoption"))
    assert (options.api_host, options.api_token, options.api_insecure) == ("file.example", "fromoption", True)
    assert (options.num_retries, options.api_timeout, options.option_prefix) == (2, 7, "source_")
    # Never the destination's settings file or environment: a source with no host is an error naming the source options.
    monkeypatch.setenv("ARVADOS_API_HOST", "destination.example")
    with pytest.raises(ArvadosClientError, match="no Arvados API host: set source_api_host .*arvados_source_api_host.*source_cluster"):
        source_connection(params(source_api_token="t"))


def test_copies_run_at_most_blocks_in_flight_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    def copy_one(locator):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return locator + "+Asigned"

    locators = [f"{index:032x}+1" for index in range(12)]
    copied = copy_blocks(locators, copy_one, blocks_in_flight=3)
    assert copied == {locator: locator + "+Asigned" for locator in locators}
    assert peak[0] == 3


def test_the_first_failure_stops_the_copy():
    started = []

    def copy_one(locator):
        started.append(locator)
        if locator.startswith("0" * 31 + "2"):
            raise OSError("keep0 answered 503")
        time.sleep(0.01)
        return locator

    locators = [f"{index:032x}+1" for index in range(50)]
    with pytest.raises(KeepUploadError, match=r"copying block 0{31}2\+1 failed: keep0 answered 503; \d+ of 50 blocks"):
        copy_blocks(locators, copy_one, blocks_in_flight=2)
    time.sleep(0.05)
    assert len(started) < 10


class ChunkedResponse:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, amount: int) -> bytes:
        chunk, self.data = self.data[:amount], self.data[amount:]
        return chunk


def test_a_streamed_body_is_exactly_the_block_or_an_error():
    body = ExactBody(ChunkedResponse(b"x" * 10 + b"extra"), 10)
    assert body.read(4) + body.read(100) + body.read(100) == b"x" * 10
    short = ExactBody(ChunkedResponse(b"x" * 6), 10)
    assert short.read(100) == b"x" * 6
    with pytest.raises(KeepStreamError, match="ended the block 4 bytes short"):
        short.read(100)


def test_a_block_that_cannot_be_streamed_goes_through_memory():
    written = []
    copy = BlockCopy(lambda locator: b"block", lambda block: written.append(block) or "signed", None, None, stream=lambda locator: None)
    assert copy(f"{A}+5") == "signed" and written == [b"block"]

    def refused(locator):
        raise KeepStreamError(f"GET {locator} answered 403", transient=False)

    failing = BlockCopy(lambda locator: b"", lambda block: "", None, None, stream=refused, num_retries=3)
    with pytest.raises(KeepStreamError, match="403"):
        failing(f"{A}+5")
