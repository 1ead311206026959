"""One ArvadosClient used from several threads (as arvados_docker_images runs its images) against the emulator: each
thread gets a client of its own, and all of them read the discovery document and Keep's services once."""
from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import threading
import types
import typing as t

import pytest

from helpers import importable_collection

DISCOVERY = "GET /discovery/v1/apis/arvados/v1/rest"
KEEP_SERVICES = "GET /arvados/v1/keep_services/accessible"
THREADS = 4


@pytest.fixture(scope="module")
def arvados_client(tmp_path_factory) -> t.Iterator[types.ModuleType]:
    with importable_collection(tmp_path_factory.mktemp("staged")):
        yield importlib.import_module("ansible_collections.arvados.cluster.plugins.module_utils._arvados")


@pytest.fixture()
def client(arvados_client, emulator) -> t.Any:
    return arvados_client.ArvadosClient(arvados_client.ConnectionOptions(
        api_host=emulator.api_host, api_token=emulator.token("alice"), api_insecure=True, num_retries=1))


def api_requests(emulator: t.Any) -> list[str]:
    return [f"{entry['method']} {entry['path']}" for entry in emulator.request_log()["entries"] if entry["service"] == "api"]


def in_threads(work: t.Callable[[int], t.Any], count: int = THREADS) -> list[t.Any]:
    """`work(index)` in `count` threads that all start at once."""
    start = threading.Barrier(count)

    def started_together(index: int) -> t.Any:
        start.wait()
        return work(index)
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(started_together, range(count)))


def test_threads_build_their_clients_from_the_document_already_read(client, emulator):
    main_thread_api = client.api.localapi()
    emulator.reset_request_log()
    answers = in_threads(lambda _index: (client.api.localapi(), client.current_user()["uuid"]))
    thread_apis = {id(api) for api, _uuid in answers}
    assert len(thread_apis) == THREADS and id(main_thread_api) not in thread_apis, "each thread has a client of its own"
    assert {uuid for _api, uuid in answers} == {emulator.users["alice"]["uuid"]}
    assert api_requests(emulator) == ["GET /arvados/v1/users/current"] * THREADS


def test_writers_starting_at_once_read_keep_s_services_once(client, emulator):
    emulator.reset_request_log()
    blocks = [f"block {index}".encode() for index in range(THREADS)]
    locators = in_threads(lambda index: client.keep.put(blocks[index], copies=1))
    assert [locator.split("+")[0] for locator in locators] == [hashlib.md5(block).hexdigest() for block in blocks]
    requests = api_requests(emulator)
    assert requests.count(KEEP_SERVICES) == 1 and DISCOVERY not in requests, requests
