# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""Docker daemon connection options -> a Docker SDK client."""

from __future__ import annotations

import os
import typing as t

from ansible.module_utils.basic import env_fallback

from ansible_collections.arvados.cluster.plugins.module_utils._errors import DaemonUnavailable

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Where the docker CLI looks for ca.pem, cert.pem and key.pem when DOCKER_CERT_PATH is not set.
DEFAULT_CERT_DIR = "~/.docker"
# Words in a connection error that mean the TLS settings, not the address, are wrong.
_TLS_TROUBLE = ("ssl", "tls", "certificate", "https server")

DOCKER_CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "docker_host": {"type": "str", "aliases": ["docker_url"], "fallback": (env_fallback, ["DOCKER_HOST"])},
    "docker_timeout": {"type": "int", "default": 120},
    "docker_tls": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS"])},
    "docker_tls_verify": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS_VERIFY"])},
    "docker_ca_path": {"type": "path"},
    "docker_client_cert": {"type": "path"},
    "docker_client_key": {"type": "path"},
}


def tls_files(params: t.Mapping[str, t.Any], environ: t.Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """The CA, client certificate and client key: the options, else ca.pem, cert.pem and key.pem where the docker
    CLI finds them (DOCKER_CERT_PATH, or ~/.docker), each only if it exists."""
    cert_dir = os.path.expanduser(environ.get("DOCKER_CERT_PATH") or DEFAULT_CERT_DIR)

    def option_or_file(option: str, file_name: str) -> str | None:
        if params.get(option):
            return params[option]
        candidate = os.path.join(cert_dir, file_name)
        return candidate if os.path.isfile(candidate) else None

    return option_or_file("docker_ca_path", "ca.pem"), option_or_file("docker_client_cert", "cert.pem"), option_or_file("docker_client_key", "key.pem")


def _tls_config(params: t.Mapping[str, t.Any]) -> t.Any:
    if not (params.get("docker_tls") or params.get("docker_tls_verify")):
        return False
    import docker.tls  # pylint: disable=import-outside-toplevel
    ca_path, client_cert, client_key = tls_files(params, os.environ)
    verify = bool(params.get("docker_tls_verify"))
    client_pair = (client_cert, client_key) if client_cert or client_key else None
    return docker.tls.TLSConfig(client_cert=client_pair, ca_cert=ca_path if verify else None, verify=verify)


def unreachable_message(host: str, error: Exception) -> str:
    """Why the daemon did not answer, and which options to check."""
    reason = str(error)
    if any(word in reason.lower() for word in _TLS_TROUBLE):
        fix = "check docker_tls_verify, docker_ca_path, docker_client_cert and docker_client_key (or DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)"
    else:
        fix = "check docker_host / DOCKER_HOST"
    return f"cannot reach the Docker daemon at {host} ({reason}): {fix}"


def docker_client(params: t.Mapping[str, t.Any]) -> t.Any:
    """A Docker SDK client for the daemon the options name; DaemonUnavailable when it does not answer.

    The SDK is imported here, by the tasks that need a daemon, and not by every task that reads the options."""
    try:
        import docker  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise DaemonUnavailable(f"the docker Python library is required to read images from a Docker daemon: {exc}") from None
    host = params.get("docker_host") or DEFAULT_DOCKER_HOST
    try:
        client = docker.DockerClient(base_url=host, version="auto", timeout=params.get("docker_timeout") or 120, tls=_tls_config(params))
    except docker.errors.DockerException as exc:
        raise DaemonUnavailable(unreachable_message(host, exc)) from None
    return client
