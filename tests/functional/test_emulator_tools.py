"""Upstream command-line tools against the emulator: arv-put a file, arv-get it back byte for byte."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

BIN = pathlib.Path(sys.executable).parent


def run_tool(emulator, home: pathlib.Path, *command: str, user: str = "alice") -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ARVADOS_")}
    env.update(emulator.env(user))
    env["HOME"] = str(home)
    return subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture()
def home(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.mark.parametrize("size", [0, 1, 5 * 1024 * 1024 + 7])
def test_arv_put_then_arv_get(emulator, home, tmp_path, size):
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(size))
    put = run_tool(emulator, home, "arv-put", "--no-progress", str(source))
    assert put.returncode == 0, put.stderr
    collection_uuid = put.stdout.strip()
    target = tmp_path / "copy.bin"
    got = run_tool(emulator, home, "arv-get", f"{collection_uuid}/payload.bin", str(target))
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == source.read_bytes()


def test_arv_put_into_a_project_and_get_by_portable_data_hash(emulator, home, tmp_path):
    project = emulator.api("alice").groups().create(body={"name": "tools test", "group_class": "project"},
                                                    ensure_unique_name=True).execute()
    source = tmp_path / "data.txt"
    source.write_text("project data\n")
    put = run_tool(emulator, home, "arv-put", "--no-progress", "--portable-data-hash", "--project-uuid", project["uuid"],
                   "--name", "tools test", str(source))
    assert put.returncode == 0, put.stderr
    pdh = put.stdout.strip()
    listed = run_tool(emulator, home, "arv-ls", pdh)
    assert listed.returncode == 0 and listed.stdout.split() == ["./data.txt"], listed.stderr
    got = run_tool(emulator, home, "arv-get", f"{pdh}/data.txt", "-")
    assert got.returncode == 0 and got.stdout == "project data\n", got.stderr
    stored = emulator.api("alice").collections().list(filters=[["owner_uuid", "=", project["uuid"]]]).execute()["items"]
    assert [collection["portable_data_hash"] for collection in stored] == [pdh]


def test_arv_get_as_another_user_is_refused(emulator, home, tmp_path):
    source = tmp_path / "private.txt"
    source.write_text("alice only\n")
    put = run_tool(emulator, home, "arv-put", "--no-progress", str(source))
    assert put.returncode == 0, put.stderr
    bob_home = tmp_path / "bob"
    bob_home.mkdir()
    got = run_tool(emulator, bob_home, "arv-get", f"{put.stdout.strip()}/private.txt", "-", user="bob")
    assert got.returncode != 0
