"""The emulator's test-only controls (request log, faults, latency, settings), restarts and the harness CLI."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

import arvados
import arvados.collection
import arvados.errors
import arvados.keep
import pytest
import requests

from harness.emulator import REPO_ROOT, Emulator

HARNESS = REPO_ROOT / "tests" / "harness" / "emulator.py"


def call(emulator, method: str, path: str, token: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"https://{emulator.api_host}{path}", headers=headers, verify=emulator.certificate,
                            timeout=30, **kwargs)


def keep_put(emulator, data: bytes, user: str = "alice") -> requests.Response:
    return requests.put(f"{emulator.keep_url}{hashlib.md5(data).hexdigest()}", data=data, timeout=30,
                        headers={"Authorization": f"Bearer {emulator.token(user)}", "X-Keep-Desired-Replicas": "2"})


@pytest.fixture(autouse=True)
def no_leftover_faults(emulator):
    yield
    emulator.clear_faults()


def test_admin_endpoint_needs_an_admin_token(emulator):
    assert call(emulator, "GET", "/_emulator/requests", None).status_code == 401
    assert call(emulator, "GET", "/_emulator/requests", emulator.token("alice")).status_code == 403
    assert call(emulator, "GET", "/_emulator/requests", emulator.admin_token).status_code == 200


def test_request_log_counts_api_and_keep_separately(emulator):
    api = emulator.api("alice")
    emulator.reset_request_log()
    api.users().current().execute()
    api.users().current().execute()
    data = b"request log block"
    keep_put(emulator, data)
    log = emulator.request_log()
    assert log["counts"]["api"] == {"GET /arvados/v1/users/current": 2}
    assert log["counts"]["keep"] == {f"PUT /{hashlib.md5(data).hexdigest()}": 1}
    assert log["routes"]["keep"] == {"PUT /{locator}": 1}
    assert [entry["service"] for entry in log["entries"]] == ["api", "api", "keep"]
    assert [entry["status"] for entry in log["entries"]] == [200, 200, 200]
    assert [entry["bytes"] for entry in log["entries"]] == [0, 0, len(data)]
    assert log["entries"][0]["request_id"].startswith("req-")
    emulator.reset_request_log()
    assert emulator.request_log()["entries"] == []


def test_fault_fails_the_next_n_matching_requests(emulator):
    emulator.inject_fault("GET", "/arvados/v1/users/current", status=503, count=2)
    token = emulator.token("alice")
    first = call(emulator, "GET", "/arvados/v1/users/current", token)
    assert first.status_code == 503 and first.json()["errors"][0].startswith("Service Unavailable (req-")
    assert call(emulator, "GET", "/arvados/v1/users/current", token).status_code == 503
    assert call(emulator, "GET", "/arvados/v1/users/current", token).status_code == 200


def test_faults_match_globs_and_the_sdk_retries_them(emulator):
    emulator.inject_fault("GET", "/arvados/v1/collections*", status=500, count=1)
    api = emulator.api("alice", num_retries=3)
    emulator.reset_request_log()
    api.collections().list(limit=1).execute()
    statuses = [entry["status"] for entry in emulator.request_log()["entries"]]
    assert statuses == [500, 200]


def test_faults_apply_to_keep(emulator):
    emulator.inject_fault("PUT", "/*", status=503, service="keep")
    data = b"keep fault block"
    failed = keep_put(emulator, data)
    assert failed.status_code == 503 and failed.text == "service unavailable\n"
    assert keep_put(emulator, data).status_code == 200


def test_dropped_keep_put_breaks_the_connection(emulator):
    emulator.inject_fault("PUT", "/*", drop_after_bytes=64 * 1024, service="keep")
    data = os.urandom(1024 * 1024)
    with pytest.raises(requests.exceptions.ConnectionError):
        keep_put(emulator, data)
    log = emulator.request_log()["entries"]
    assert log[-1]["status"] == "dropped"
    assert keep_put(emulator, data).status_code == 200


@pytest.mark.slow
def test_keep_client_recovers_from_a_dropped_put(emulator):
    api = emulator.api("alice")
    emulator.inject_fault("PUT", "/*", drop_after_bytes=1000, service="keep")
    data = os.urandom(256 * 1024)
    locator = arvados.keep.KeepClient(api_client=api, num_retries=2).put(data, copies=2)
    assert locator.startswith(hashlib.md5(data).hexdigest())
    entries = [entry for entry in emulator.request_log()["entries"] if entry["service"] == "keep"][-2:]
    assert [entry["status"] for entry in entries] == ["dropped", 200]


def test_latency_delays_matching_requests(emulator):
    token = emulator.token("alice")
    emulator.set_latency("GET", "/arvados/v1/users/current", 0.6)
    started = time.monotonic()
    assert call(emulator, "GET", "/arvados/v1/users/current", token).status_code == 200
    assert time.monotonic() - started >= 0.6
    emulator.clear_faults()
    started = time.monotonic()
    call(emulator, "GET", "/arvados/v1/users/current", token)
    assert time.monotonic() - started < 0.5


def test_fault_listing(emulator):
    fault = emulator.inject_fault("DELETE", "/arvados/v1/links/*", status=409, count=3)
    assert fault["remaining"] == 3 and fault["status"] == 409
    listed = emulator.admin_call("GET", "/_emulator/faults")
    assert [entry["fault_id"] for entry in listed["faults"]] == [fault["fault_id"]]
    emulator.clear_faults()
    assert emulator.admin_call("GET", "/_emulator/faults") == {"faults": [], "latencies": []}


def test_docker_image_formats_change_at_runtime(fresh_emulator):
    assert fresh_emulator.api()._rootDesc["dockerImageFormats"] == ["v2"]
    fresh_emulator.set_docker_image_formats(["v1"])
    assert fresh_emulator.api()._rootDesc["dockerImageFormats"] == ["v1"]
    fresh_emulator.set_docker_image_formats([])
    assert fresh_emulator.api()._rootDesc["dockerImageFormats"] == []


def test_formats_from_the_command_line(tmp_path):
    emulator = Emulator(tmp_path / "formats", docker_image_formats=["v2", "v1"]).start()
    try:
        assert emulator.api()._rootDesc["dockerImageFormats"] == ["v2", "v1"]
    finally:
        emulator.stop()


def test_restart_keeps_tokens_data_and_port(fresh_emulator):
    api = fresh_emulator.api("alice")
    writer = arvados.collection.Collection(api_client=api)
    with writer.open("kept.txt", "wb") as kept:
        kept.write(b"survives a restart")
    writer.save_new(name="persistent")
    before = dict(fresh_emulator.ready)
    process = fresh_emulator.process
    fresh_emulator.restart()
    assert process.returncode == 0
    assert fresh_emulator.api_host == before["api_host"]
    assert fresh_emulator.users == before["users"]
    assert fresh_emulator.ready["cluster_id"] == before["cluster_id"]
    again = fresh_emulator.api("alice")
    reader = arvados.collection.CollectionReader(writer.manifest_locator(), api_client=again)
    assert reader.open("kept.txt", "rb").read() == b"survives a restart"


def test_sigterm_stops_cleanly(fresh_emulator):
    process = fresh_emulator.process
    fresh_emulator.stop()
    assert process.returncode == 0
    assert "stopping" in fresh_emulator.log_file.read_text()


def test_harness_command_line_up_and_down(tmp_path):
    data_dir = tmp_path / "cli"
    up = subprocess.run([sys.executable, str(HARNESS), "up", "--data-dir", str(data_dir)],
                        capture_output=True, text=True, timeout=120, check=False)
    assert up.returncode == 0, up.stderr
    ready = json.loads(up.stdout)
    pid = int((data_dir / "pid").read_text())
    assert ready["pid"] == pid
    try:
        response = requests.get(f"https://{ready['api_host']}/arvados/v1/users/current", verify=ready["certificate"],
                                headers={"Authorization": f"Bearer {ready['api_token']}"}, timeout=30)
        assert response.json()["username"] == "alice"
    finally:
        down = subprocess.run([sys.executable, str(HARNESS), "down", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert not pathlib.Path(f"/proc/{pid}").exists() or b"serve.py" not in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    assert not (data_dir / "pid").exists()
