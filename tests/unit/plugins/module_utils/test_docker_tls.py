# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Where the Docker TLS files come from, and which options a connection error points at."""

from __future__ import annotations

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._docker import tls_files, unreachable_message

NO_OPTIONS = {"docker_ca_path": None, "docker_client_cert": None, "docker_client_key": None}


@pytest.fixture()
def cert_dir(tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    return tmp_path


def test_the_options_win_over_the_folder(cert_dir) -> None:
    options = {"docker_ca_path": "/etc/ca.pem", "docker_client_cert": "/etc/me.pem", "docker_client_key": "/etc/me.key"}
    assert tls_files(options, {"DOCKER_CERT_PATH": str(cert_dir)}) == ("/etc/ca.pem", "/etc/me.pem", "/etc/me.key")


def test_docker_cert_path_gives_the_files_the_docker_cli_reads(cert_dir) -> None:
    assert tls_files(NO_OPTIONS, {"DOCKER_CERT_PATH": str(cert_dir)}) == (
        str(cert_dir / "ca.pem"), str(cert_dir / "cert.pem"), str(cert_dir / "key.pem"))


def test_an_option_and_the_folder_mix(cert_dir) -> None:
    options = dict(NO_OPTIONS, docker_ca_path="/etc/ca.pem")
    assert tls_files(options, {"DOCKER_CERT_PATH": str(cert_dir)}) == ("/etc/ca.pem", str(cert_dir / "cert.pem"), str(cert_dir / "key.pem"))


def test_files_missing_from_the_folder_are_not_used(cert_dir) -> None:
    (cert_dir / "cert.pem").unlink()
    (cert_dir / "key.pem").unlink()
    assert tls_files(NO_OPTIONS, {"DOCKER_CERT_PATH": str(cert_dir)}) == (str(cert_dir / "ca.pem"), None, None)


def test_without_docker_cert_path_the_folder_is_dot_docker_in_home(cert_dir, monkeypatch) -> None:
    home = cert_dir.parent
    (home / ".docker").mkdir()
    (home / ".docker" / "ca.pem").write_text("ca", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    assert tls_files(NO_OPTIONS, {}) == (str(home / ".docker" / "ca.pem"), None, None)


@pytest.mark.parametrize("reason", [
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate",
    "[SSL: TLSV1_ALERT_BAD_CERTIFICATE] tlsv1 alert bad certificate",
    "400 Client Error: Bad Request (\"Client sent an HTTP request to an HTTPS server.\")",
])
def test_tls_trouble_points_at_the_tls_options(reason) -> None:
    message = unreachable_message("tcp://docker.example:2376", RuntimeError(reason))
    assert message.startswith("cannot reach the Docker daemon at tcp://docker.example:2376")
    assert "docker_tls_verify, docker_ca_path, docker_client_cert and docker_client_key" in message


def test_other_trouble_points_at_docker_host() -> None:
    message = unreachable_message("unix:///nonexistent.sock", FileNotFoundError(2, "No such file or directory"))
    assert message.endswith("check docker_host / DOCKER_HOST")
