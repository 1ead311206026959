"""One block streamed from one cluster's Keep into another's (`_keep_stream`): against two emulators, in the kernel
(splice) and through the window; and splice_body between loopback TCP sockets."""
from __future__ import annotations

import hashlib
import importlib
import os
import socket
import threading
import types
import typing as t

import arvados.keep
import pytest

from helpers import importable_collection

MODULE = "ansible_collections.arvados.cluster.plugins.module_utils._keep_stream"
MIB = 1 << 20


@pytest.fixture(scope="module")
def keep_stream(tmp_path_factory) -> t.Iterator[types.ModuleType]:
    with importable_collection(tmp_path_factory.mktemp("staged")):
        yield importlib.import_module(MODULE)


@pytest.mark.parametrize("kernel_splice", [True, False], ids=["spliced", "through the window"])
def test_a_block_reaches_the_destination_byte_for_byte(clusters, keep_stream, kernel_splice) -> None:
    source, destination = clusters["aaaaa"], clusters["bbbbb"]
    source_keep = arvados.keep.KeepClient(api_client=source.api(), num_retries=0)
    destination_keep = arvados.keep.KeepClient(api_client=destination.api(), num_retries=0)
    data = os.urandom(3 * MIB + 17)
    locator = source_keep.put(data, copies=1)
    destination.reset_request_log()
    stream = keep_stream.KeepStream(source_keep, destination_keep, (True, True), 1, None, timeout=30, kernel_splice=kernel_splice)
    signed = stream(locator)
    assert signed.startswith(f"{hashlib.md5(data).hexdigest()}+{len(data)}+A"), signed
    assert destination_keep.get(signed) == data
    # Spliced, all but the bytes read along with the response's headers move in the kernel; else none do.
    assert len(data) - 64 * 1024 < stream.spliced_bytes <= len(data) if kernel_splice else stream.spliced_bytes == 0
    puts = [entry for entry in destination.request_log()["entries"] if entry["service"] == "keep" and entry["method"] == "PUT"]
    assert [(entry["status"], entry["request_bytes"]) for entry in puts] == [(200, len(data))]


def loopback_pair() -> tuple[socket.socket, socket.socket]:
    """Two ends of one TCP connection on 127.0.0.1, each with a timeout (so non-blocking, as http.client's are)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=10)
        accepted, _address = server.accept()
    accepted.settimeout(10)
    return client, accepted


def received(sock: socket.socket, into: bytearray) -> threading.Thread:
    def read() -> None:
        while chunk := sock.recv(MIB):
            into.extend(chunk)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_splice_body_moves_every_byte_in_the_kernel(keep_stream) -> None:
    source_writer, source = loopback_pair()
    destination, destination_reader = loopback_pair()
    data = os.urandom(5 * MIB + 3)
    writer = threading.Thread(target=source_writer.sendall, args=(data,), daemon=True)
    writer.start()
    got = bytearray()
    reader = received(destination_reader, got)
    assert keep_stream.splice_body(source, destination, len(data), timeout=10) == len(data)
    destination.close()
    reader.join(10)
    assert bytes(got) == data


def test_splice_body_fails_on_a_source_that_ends_early(keep_stream) -> None:
    source_writer, source = loopback_pair()
    destination, destination_reader = loopback_pair()
    source_writer.sendall(b"x" * 1000)
    source_writer.close()
    received(destination_reader, bytearray())
    with pytest.raises(keep_stream.KeepStreamError, match="ended the block 4000 bytes short"):
        keep_stream.splice_body(source, destination, 5000, timeout=10)
