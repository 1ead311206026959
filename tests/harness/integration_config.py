"""Writes tests/integration/integration_config.yml from the ready files of the running test services.

ansible-test passes almost no environment to integration targets, so they read the emulator's address
and tokens and the Docker daemon's socket as variables from this file.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import yaml


HARNESS_DIR = pathlib.Path(__file__).resolve().parent


def integration_variables(emulator: dict, docker: dict) -> dict:
    """The variables every integration target may use."""
    return {
        "harness_dir": str(HARNESS_DIR),
        "arvados_api_host": emulator["api_host"],
        "arvados_api_token": emulator["api_token"],
        "arvados_api_insecure": bool(emulator.get("insecure", True)),
        "arvados_users": emulator["users"],
        "arvados_system_user_uuid": emulator["system_user_uuid"],
        "docker_host": docker["docker_host"],
        # The same daemon over TCP with TLS, requiring a client certificate; DOCKER_CERT_PATH-style folder of the client files.
        "docker_tls_host": docker["docker_tls_host"],
        "docker_cert_path": docker["docker_cert_path"],
        "docker_registry": docker["registry"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emulator", type=pathlib.Path, required=True, help="the emulator's ready file")
    parser.add_argument("--docker", type=pathlib.Path, required=True, help="the docker harness's state file")
    parser.add_argument("--output", type=pathlib.Path, required=True)
    args = parser.parse_args()
    variables = integration_variables(json.loads(args.emulator.read_text(encoding="utf-8")),
                                      json.loads(args.docker.read_text(encoding="utf-8")))
    args.output.write_text(yaml.safe_dump(variables, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    main()
