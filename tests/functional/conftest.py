"""Fixtures shared by the functional tests: a real Arvados emulator, dockerd and registry.

Each service is started once per test session in a private directory and stopped by pid at the end.
"""
from __future__ import annotations

import sys
import pathlib

import pytest

from harness.docker_env import DockerDaemon, Registry, ImageFactory
from harness.emulator import Emulator

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def state_root(tmp_path_factory) -> pathlib.Path:
    """A private directory for everything the services of this session write."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def emulator(state_root):
    """The Arvados emulator, started on a fresh data directory."""
    emu = Emulator(state_root / "emulator").start()
    yield emu
    emu.stop()


@pytest.fixture()
def fresh_emulator(tmp_path):
    """An emulator of its own for a test that changes server-wide settings or restarts it."""
    emu = Emulator(tmp_path / "emulator").start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def dockerd(state_root):
    """A private Docker daemon (vfs, no iptables, no bridge); skipped nowhere: tests need it."""
    daemon = DockerDaemon(state_root / "dockerd").start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def registry(state_root):
    """A private Docker registry on 127.0.0.1."""
    reg = Registry(state_root / "registry").start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def images(dockerd, state_root):
    """Builds small images offline in the private daemon."""
    return ImageFactory(dockerd, state_root / "images")


@pytest.fixture()
def isolated_home(tmp_path, monkeypatch):
    """A HOME of the test's own, so upstream tools' caches never leak between tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def pytest_report_header(config):
    return f"arvados.cluster functional tests, repo root {REPO_ROOT}, python {sys.version.split()[0]}"
