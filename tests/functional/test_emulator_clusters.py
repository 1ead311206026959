"""Several emulators side by side, each its own cluster: uuid prefix, Keep, tokens and signatures."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import arvados
import arvados.errors
import pytest
import requests

from harness.emulator import REPO_ROOT, SERVE, Emulator


def test_each_cluster_has_its_own_uuid_prefix(clusters):
    for cluster_id, emu in clusters.items():
        assert emu.uuid_prefix == cluster_id
        api = emu.api("alice")
        assert api.users().current().execute()["uuid"].startswith(f"{cluster_id}-tpzed-")
        assert api._rootDesc["uuidPrefix"] == cluster_id
        assert api.configs().get().execute()["ClusterID"] == cluster_id
        created = api.collections().create(body={"manifest_text": ""}).execute()
        assert created["uuid"].startswith(f"{cluster_id}-4zz18-")
        assert emu.system_user_uuid == f"{cluster_id}-tpzed-000000000000000"


def test_tokens_and_keep_are_per_cluster(clusters):
    first, second, third = clusters.values()
    assert len({emu.api_host for emu in clusters.values()}) == 3
    assert len({emu.keep_url for emu in clusters.values()}) == 3
    assert first.token("alice") != second.token("alice")
    with pytest.raises(arvados.errors.ApiError) as refused:
        arvados.api("v1", host=second.api_host, token=first.token("alice"), insecure=True, num_retries=0).users().current().execute()
    assert refused.value.resp.status == 401
    data = b"a block only cluster aaaaa holds"
    locator = hashlib.md5(data).hexdigest()
    put = requests.put(f"{first.keep_url}{locator}", data=data, timeout=30,
                       headers={"Authorization": f"Bearer {first.token('alice')}"})
    assert put.status_code == 200
    signed = put.text.strip()
    headers = {"Authorization": f"Bearer {first.token('alice')}"}
    assert requests.get(f"{first.keep_url}{signed}", headers=headers, timeout=30).content == data
    # Another cluster neither holds the block nor accepts the first cluster's signature.
    other_headers = {"Authorization": f"Bearer {third.token('alice')}"}
    assert requests.get(f"{third.keep_url}{signed}", headers=other_headers, timeout=30).status_code in (400, 403, 404)
    assert requests.head(f"{third.keep_url}{locator}+{len(data)}", headers=other_headers, timeout=30).status_code >= 400


def test_the_cluster_id_is_fixed_by_the_data_directory(tmp_path):
    emu = Emulator(tmp_path / "emulator", cluster_id="qqqqq").start()
    try:
        emu.restart()
        assert emu.uuid_prefix == "qqqqq"
    finally:
        emu.stop()
    emu = Emulator(tmp_path / "emulator")
    emu.start()
    try:
        assert emu.uuid_prefix == "qqqqq"
    finally:
        emu.stop()
    conflicting = subprocess.run([sys.executable, str(SERVE), "--data-dir", str(tmp_path / "emulator"), "--ready-file",
                                  str(tmp_path / "ready.json"), "--cluster-id", "rrrrr"],
                                 capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False)
    assert conflicting.returncode != 0
    assert "already holds cluster qqqqq" in conflicting.stderr


def test_a_cluster_id_must_be_five_characters(tmp_path):
    refused = subprocess.run([sys.executable, str(SERVE), "--data-dir", str(tmp_path), "--ready-file", str(tmp_path / "r.json"),
                              "--cluster-id", "TOO-LONG"], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                             check=False)
    assert refused.returncode != 0
    assert "five lower-case letters or digits" in refused.stderr
