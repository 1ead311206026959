"""Pytest fixtures for the services every suite needs: the Arvados emulator, a private dockerd and registry.

A suite's conftest imports them by name (pytest finds fixtures among a conftest's globals). Each service is
started once per session in a private directory and stopped by pid at the end.
"""
from __future__ import annotations

import pathlib

import pytest

from harness.docker_env import DockerDaemon, ImageFactory, Registry
from harness.emulator import Emulator

__all__ = ["state_root", "emulator", "fresh_emulator", "clusters", "dockerd", "registry", "images"]

CLUSTER_IDS = ("aaaaa", "bbbbb", "ccccc")


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
    """An emulator of the test's own, for a test that changes server-wide settings or restarts it."""
    emu = Emulator(tmp_path / "emulator").start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def clusters(state_root):
    """Three emulators side by side, each with its own uuid prefix, Keep and tokens: {"aaaaa": A, "bbbbb": B, ...}."""
    started: dict[str, Emulator] = {}
    try:
        for cluster_id in CLUSTER_IDS:
            started[cluster_id] = Emulator(state_root / f"cluster-{cluster_id}", cluster_id=cluster_id).start()
        yield started
    finally:
        for emu in started.values():
            emu.stop()


@pytest.fixture(scope="session")
def dockerd(state_root):
    """A private Docker daemon (vfs, no iptables, no bridge)."""
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
def images(dockerd, state_root) -> ImageFactory:
    """Builds small images offline in the private daemon."""
    return ImageFactory(dockerd, state_root / "images")
