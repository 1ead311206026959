"""Which collection arvados-cwl-runner would run for a DockerRequirement's dockerPull, by its own resolution.

Run with the interpreter of the venv that holds arvados-cwl-runner (build/venv-cwl, made by `make faults`). The
connection comes from ARVADOS_API_HOST, ARVADOS_API_TOKEN and ARVADOS_API_HOST_INSECURE. `copy_deps` asks, as
`arvados-cwl-runner --copy-deps` does, for a copy inside the project: the image must be there, not merely readable.
Prints {"portable_data_hash": ...}; when the image is missing the runner tries to fetch and upload it, which fails
with the daemon out of reach, and this exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import sys

import arvados
from arvados_cwl.arvdocker import arv_docker_get_image
from arvados_cwl.context import ArvRuntimeContext


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docker-pull", required=True)
    parser.add_argument("--project-uuid", required=True)
    args = parser.parse_args()
    context = ArvRuntimeContext({"project_uuid": args.project_uuid, "copy_deps": True})
    pdh = arv_docker_get_image(arvados.api("v1"), {"dockerPull": args.docker_pull}, True, context)
    json.dump({"portable_data_hash": pdh}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
