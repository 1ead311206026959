"""Two controllers ensuring the same image into the same project at once: how many bytes reach Keep.

    .venv/bin/python bench/claim_race.py --collections-path DIR [--size-mb 20] [--rounds 3] [--json F] [--markdown F]

One private dockerd and one emulator. Each round builds a fresh image and starts two `ansible-playbook` runs of the
image module together, each with a HOME folder of its own (so no host lock is shared: two hosts, as far as the module
can tell). It records each run's result, and the Keep PUT bytes and API requests from the emulator's request log.
Rounds run with no added latency, and with Keep PUTs held --hold seconds (a slower network), which makes the two
runs overlap for certain.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.docker_env import DockerDaemon  # noqa: E402  pylint: disable=wrong-import-position
from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position
from common import bench_arguments, daemon_and_emulator, publish  # noqa: E402  pylint: disable=wrong-import-position

BIN = pathlib.Path(sys.executable).parent
PLAYBOOK = """\
- name: Ensure one image
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Ensure the image
      arvados.cluster.arvados_docker_image:
        name: "{{ bench_image }}"
        project_uuid: "{{ bench_project }}"
        docker_host: "{{ bench_docker_host }}"
"""
INVENTORY = "localhost ansible_connection=local ansible_python_interpreter={python}\n"


CALLBACK_DIR = ROOT / "tests" / "faults" / "callback_plugins"


def task_result(results_file: pathlib.Path) -> dict[str, t.Any]:
    """The image task's result, as the fault suite's result_file callback wrote it."""
    records = [json.loads(line) for line in results_file.read_text(encoding="utf-8").splitlines()]
    return next(record["result"] for record in records if record["task"] == "Ensure the image")


def race(work: pathlib.Path, emulator: Emulator, daemon: DockerDaemon, collections_path: pathlib.Path,
         image_ref: str, project: str) -> dict[str, t.Any]:
    """Start both runs together; their results, and what reached Keep."""
    emulator.reset_request_log()
    runs = []
    for host in ("first", "second"):
        home = work / host
        home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **emulator.env(), HOME=str(home), ANSIBLE_COLLECTIONS_PATH=str(collections_path),
                   ANSIBLE_CALLBACK_PLUGINS=str(CALLBACK_DIR), ANSIBLE_CALLBACKS_ENABLED="result_file",
                   ARVADOS_CLUSTER_TEST_RESULTS=str(home / "results.jsonl"), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
                   ANSIBLE_REMOTE_TMP=str(home / "tmp"))
        command = [str(BIN / "ansible-playbook"), "-i", str(work.parent / "inventory"), str(work.parent / "race.yml"), "-e",
                   json.dumps({"bench_image": image_ref, "bench_project": project, "bench_docker_host": daemon.docker_host})]
        runs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    started = time.perf_counter()
    results = []
    for host, process in zip(("first", "second"), runs):
        stdout, stderr = process.communicate(timeout=600)
        if process.returncode != 0:
            raise SystemExit(f"a run failed ({process.returncode}):\n{stdout[-3000:]}\n{stderr[-2000:]}")
        results.append(task_result(work / host / "results.jsonl"))
    log = emulator.request_log()["entries"]
    puts = [entry for entry in log if entry["service"] == "keep" and entry["method"] == "PUT" and entry["status"] == 200]
    return {
        "wall_s": time.perf_counter() - started,
        "put_bytes": sum(entry["request_bytes"] for entry in puts),
        "api_requests": sum(1 for entry in log if entry["service"] == "api"),
        "changed": [result["changed"] for result in results],
        "waited_s": [result.get("waited_for_upload") for result in results],
        "collections": sorted({result["collection_uuid"] for result in results}),
    }


def markdown(rounds: list[dict[str, t.Any]], size_mb: int, hold: float, command: str) -> str:
    lines = [
        "# Benchmark: two controllers ensuring the same image into one project at once", "",
        f"Each round: a fresh image of {size_mb} MB payload, two `ansible-playbook` runs of `arvados_docker_image` started "
        "together from two HOME folders (no shared host lock), one emulator. "
        f"Command: `{command}`.", "",
        "| round | Keep PUTs held | image bytes | Keep PUT bytes | PUT bytes / image | changed | waited (s) | collections | API requests |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for index, measured in enumerate(rounds, 1):
        lines.append(f"| {index} | {measured['hold_s']} s | {measured['image_bytes']} | {measured['put_bytes']} | "
                     f"{measured['put_bytes'] / measured['image_bytes']:.2f} | {measured['changed']} | {measured['waited_s']} | "
                     f"{len(measured['collections'])} | {measured['api_requests']} |")
    once = all(measured["put_bytes"] == measured["image_bytes"] and len(measured["collections"]) == 1 for measured in rounds)
    lines += ["", f"One transfer and one collection in every round: {'yes' if once else 'NO'} "
                  f"(Keep PUTs held {hold} s in the second half of the rounds, so that the runs overlap).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = bench_arguments(__doc__, rounds=3)
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--hold", type=float, default=2.0)
    args = parser.parse_args()
    rounds = []
    with daemon_and_emulator("bench-claim-") as (work, daemon, factory, emulator):
        (work / "race.yml").write_text(PLAYBOOK, encoding="utf-8")
        (work / "inventory").write_text(INVENTORY.format(python=sys.executable), encoding="utf-8")
        alice = emulator.api("alice")
        for index in range(2 * args.rounds):
            hold = args.hold if index >= args.rounds else 0
            emulator.set_latency("PUT", "/*", hold, service="keep")
            image = factory.build(f"bench/race-{index}", "1", size=args.size_mb * 1_000_000)
            image_bytes = sum(len(chunk) for chunk in daemon.client().api.get_image(image.image_id))
            body = {"group": {"name": f"claim race {index}", "group_class": "project"}}
            project = alice.groups().create(body=body, ensure_unique_name=True).execute()["uuid"]
            measured = race(work / f"round-{index}", emulator, daemon, args.collections_path, image.ref, project)
            rounds.append({"hold_s": hold, "image_bytes": image_bytes, **measured})
    command = f"make bench-claim BENCH_CLAIM_MB={args.size_mb} BENCH_CLAIM_ROUNDS={args.rounds}"
    return publish(markdown(rounds, args.size_mb, args.hold, command), rounds, args)


if __name__ == "__main__":
    sys.exit(main())
