"""The docker_images role against a shell loop of arv-keepdocker, with every image already in the cluster.

    .venv/bin/python bench/role_vs_keepdocker.py --collections-path DIR [--images 20] [--rounds 3] [--json F] [--markdown F]

One private dockerd and one emulator serve both tools in the same run. The images (small busybox images built
offline) are stored once by running the role, so what is measured is the case the role is built for: a list of
images the cluster already holds. Each round then times, in alternating order,
- the role: `ansible-playbook` of a play that applies it to every image (wall time, and the sum of its tasks'
  times from the junit callback), and
- `for image in ...; do arv-keepdocker repo tag; done` in bash over the same images (wall time),
and counts the API requests each made from the emulator's request log.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import statistics
import sys
import tempfile
import typing as t
from xml.etree import ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.docker_env import DockerDaemon, ImageFactory  # noqa: E402  pylint: disable=wrong-import-position
from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position
from common import bench_arguments, publish, timed  # noqa: E402  pylint: disable=wrong-import-position

BIN = pathlib.Path(sys.executable).parent
TARGET_RATIO = 0.25
PLAYBOOK = """\
- name: Ensure the benchmark images
  hosts: localhost
  gather_facts: false
  roles:
    - role: arvados.cluster.docker_images
      vars:
        docker_images_items: "{{ bench_images }}"
        docker_images_docker_host: "{{ bench_docker_host }}"
"""
INVENTORY = "localhost ansible_connection=local ansible_python_interpreter={python}\n"


def api_requests(emulator: Emulator) -> int:
    return sum(emulator.request_log()["counts"].get("api", {}).values())


def junit_total(junit_dir: pathlib.Path) -> float:
    """The sum of every task's time in the junit reports of one playbook run."""
    return sum(float(case.get("time") or 0) for report in junit_dir.glob("*.xml")
               for case in ElementTree.parse(report).iter("testcase"))


def recap_changed(output: str) -> int:
    match = re.search(r"changed=(\d+)", output.rsplit("PLAY RECAP", 1)[-1])
    return int(match.group(1)) if match else -1


class Bench:
    """The two tools, set up once on one emulator and one dockerd."""

    def __init__(self, work: pathlib.Path, emulator: Emulator, daemon: DockerDaemon, refs: list[str],
                 collections_path: pathlib.Path) -> None:
        self.work = work
        self.emulator = emulator
        self.refs = refs
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        # /usr/bin first: arv-keepdocker runs the docker CLI, which must match the Debian engine.
        self.env = dict(os.environ, **emulator.env(), **daemon.env(), HOME=str(home),
                        PATH=f"/usr/bin:{BIN}:{os.environ.get('PATH', '')}")
        self.junit_dir = work / "junit"
        (work / "bench.yml").write_text(PLAYBOOK, encoding="utf-8")
        (work / "inventory").write_text(INVENTORY.format(python=sys.executable), encoding="utf-8")
        self.role_env = dict(self.env, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_NOCOLOR="1",
                             ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit", JUNIT_OUTPUT_DIR=str(self.junit_dir),
                             ANSIBLE_LOCAL_TEMP=str(work / "tmp"), ANSIBLE_REMOTE_TMP=str(work / "tmp"))
        images = [{"name": ref} for ref in refs]
        self.role_command = [str(BIN / "ansible-playbook"), "-i", str(work / "inventory"), str(work / "bench.yml"),
                             "-e", json.dumps({"bench_images": images, "bench_docker_host": daemon.docker_host})]
        loop = " ".join(shlex.quote(f"{ref.rsplit(':', 1)[0]} {ref.rsplit(':', 1)[1]}") for ref in refs)
        self.loop_command = ["/bin/bash", "-c",
                             f"set -e; for image in {loop}; do {shlex.quote(str(BIN / 'arv-keepdocker'))} $image; done"]

    def store_all(self) -> None:
        _wall, output = timed(self.role_command, self.role_env)
        if recap_changed(output) != 1:
            raise SystemExit(f"the first run of the role should have stored the images:\n{output[-3000:]}")

    def role(self) -> dict[str, t.Any]:
        for old in self.junit_dir.glob("*.xml"):
            old.unlink()
        self.emulator.reset_request_log()
        wall, output = timed(self.role_command, self.role_env)
        if recap_changed(output) != 0:
            raise SystemExit(f"the role changed something with every image present:\n{output[-3000:]}")
        return {"wall_s": wall, "task_s": junit_total(self.junit_dir), "api_requests": api_requests(self.emulator)}

    def keepdocker_loop(self) -> dict[str, t.Any]:
        self.emulator.reset_request_log()
        wall, output = timed(self.loop_command, self.env)
        uuids = [line for line in output.split() if "-4zz18-" in line]
        if len(uuids) != len(self.refs):
            raise SystemExit(f"arv-keepdocker printed {len(uuids)} collections for {len(self.refs)} images:\n{output[-3000:]}")
        return {"wall_s": wall, "api_requests": api_requests(self.emulator)}


def markdown(rounds: list[dict[str, t.Any]], image_count: int, command: str) -> str:
    def med(tool: str, key: str) -> float:
        return statistics.median(float(measured[tool][key]) for measured in rounds)

    role_wall, loop_wall = med("role", "wall_s"), med("keepdocker", "wall_s")
    # Each round measures both tools back to back, so its ratio is the least disturbed by other load on the machine.
    ratio = statistics.median(measured["role"]["wall_s"] / measured["keepdocker"]["wall_s"] for measured in rounds)
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    per_round = ", ".join(f"{measured['role']['wall_s']:.2f} s / {measured['keepdocker']['wall_s']:.2f} s" for measured in rounds)
    return "\n".join([
        "# Benchmark: the docker_images role against a shell loop of arv-keepdocker", "",
        f"{image_count} small images, all already stored in the cluster (the role ran once before measuring), on one "
        f"emulator and one private dockerd. Median of {len(rounds)} round(s), the two tools alternating. "
        f"Command: `{command}`.", "",
        "| measure | arv-keepdocker loop | role | role / loop |", "| --- | --- | --- | --- |",
        f"| wall time (s) | {loop_wall:.2f} | {role_wall:.2f} | {role_wall / loop_wall:.2f} |",
        f"| the role's task time, junit (s) | - | {med('role', 'task_s'):.2f} | {med('role', 'task_s') / loop_wall:.2f} |",
        f"| API requests | {med('keepdocker', 'api_requests'):.0f} | {med('role', 'api_requests'):.0f} | "
        f"{med('role', 'api_requests') / med('keepdocker', 'api_requests'):.2f} |",
        "",
        f"Wall time of the role against the loop, the median of the rounds' ratios: {ratio:.2f}x, which {verdict} the "
        f"target of {TARGET_RATIO}x. Per round, role against loop: {per_round}.",
        "The role's wall time includes starting ansible-playbook; its task time is what the role's tasks took.", "",
    ])


def main() -> int:
    parser = bench_arguments(__doc__, rounds=5)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-role-") as scratch:
        work = pathlib.Path(scratch)
        daemon = DockerDaemon(work / "dockerd").start()
        emulator = None
        try:
            factory = ImageFactory(daemon, work / "images")
            refs = [factory.build(f"bench/role-{index:02d}", "1").ref for index in range(1, args.images + 1)]
            emulator = Emulator(work / "emulator").start()
            bench = Bench(work / "run", emulator, daemon, refs, args.collections_path)
            bench.store_all()
            rounds = []
            for index in range(args.rounds):
                order = ("role", "keepdocker") if index % 2 == 0 else ("keepdocker", "role")
                rounds.append({tool: bench.role() if tool == "role" else bench.keepdocker_loop() for tool in order})
        finally:
            if emulator is not None:
                emulator.stop()
            daemon.stop()
    report = markdown(rounds, args.images, f"make bench-role BENCH_ROLE_IMAGES={args.images} BENCH_ROLE_ROUNDS={args.rounds}")
    return publish(report, rounds, args)


if __name__ == "__main__":
    sys.exit(main())
