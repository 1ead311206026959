# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""Docker daemon connection options -> a Docker SDK client."""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import env_fallback

from ansible_collections.arvados.cluster.plugins.module_utils._image_source import DaemonUnavailable

try:
    import docker
    import docker.tls
    DOCKER_IMPORT_ERROR = None
except ImportError as exc:  # reported when a daemon is needed
    DOCKER_IMPORT_ERROR = exc

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

DOCKER_CONNECTION_SPEC: t.Dict[str, t.Dict[str, t.Any]] = {
    "docker_host": {"type": "str", "aliases": ["docker_url"], "fallback": (env_fallback, ["DOCKER_HOST"])},
    "docker_timeout": {"type": "int", "default": 120},
    "docker_tls": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS"])},
    "docker_tls_verify": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS_VERIFY"])},
    "docker_ca_path": {"type": "path"},
    "docker_client_cert": {"type": "path"},
    "docker_client_key": {"type": "path"},
}


def _tls_config(params: t.Mapping[str, t.Any]) -> t.Any:
    if not (params.get("docker_tls") or params.get("docker_tls_verify")):
        return False
    client_cert = None
    if params.get("docker_client_cert"):
        client_cert = (params["docker_client_cert"], params.get("docker_client_key"))
    return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=params.get("docker_ca_path"), verify=bool(params.get("docker_tls_verify")))


def docker_client(params: t.Mapping[str, t.Any]) -> t.Any:
    """A Docker SDK client for the daemon the options name; DaemonUnavailable when it does not answer."""
    if DOCKER_IMPORT_ERROR is not None:
        raise DaemonUnavailable(f"the docker Python library is required to read images from a Docker daemon: {DOCKER_IMPORT_ERROR}")
    host = params.get("docker_host") or DEFAULT_DOCKER_HOST
    try:
        client = docker.DockerClient(base_url=host, version="auto", timeout=params.get("docker_timeout") or 120, tls=_tls_config(params))
    except docker.errors.DockerException as exc:
        raise DaemonUnavailable(f"cannot reach the Docker daemon at {host} ({exc}): check docker_host / DOCKER_HOST") from None
    return client
