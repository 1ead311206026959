"""Fixtures of the functional tests: the shared services (a real Arvados emulator, dockerd and registry) and a private HOME."""
from __future__ import annotations

import sys
import pathlib

import pytest

from harness.fixtures import clusters, dockerd, emulator, fresh_emulator, images, registry, state_root

__all__ = ["clusters", "dockerd", "emulator", "fresh_emulator", "images", "registry", "state_root", "isolated_home"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture()
def isolated_home(tmp_path, monkeypatch):
    """A HOME of the test's own, so upstream tools' caches never leak between tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def pytest_report_header(config):
    return f"arvados.cluster functional tests, repo root {REPO_ROOT}, python {sys.version.split()[0]}"
