"""How listing and resolving images scale with the number of images a cluster holds.

    .venv/bin/python bench/scale.py --collections-path DIR [--sizes 200,2000,4000] [--rounds 3] [--json F] [--markdown F]

For each size N, a fresh emulator is seeded with N images stored the way arv-keepdocker stores them, without
Docker or image bytes: in one project, a collection per image whose manifest holds one file `sha256:<hex>.tar`
(every manifest points at one small Keep block), with its `docker_image_hash` and `docker_image_repo+tag` links.
About one name in ten `bench/imgNNNN:1` holds two or three images (other ids, other timestamps). Each round
then measures, the tools alternating in order from round to round,
- `arv-keepdocker images`: the whole process;
- `list_images_in_arv(api, 3)` in-process: the call alone, on a client made beforehand;
- the arvados_docker_image_info module listing every image: its task time (junit callback) and the
  ansible-playbook wall time, with the result registered (as a play uses it), and again not registered;
- the arvados_docker_image lookup of every name in one query: its task time and the ansible-playbook wall time,
and counts the API requests of each from the emulator's request log. Times are medians over the rounds.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import typing as t
from xml.etree import ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position
from functional.helpers import ImageCollections  # noqa: E402  pylint: disable=wrong-import-position
from common import bench_arguments, publish, timed  # noqa: E402  pylint: disable=wrong-import-position

BIN = pathlib.Path(sys.executable).parent
SEED_THREADS = 8
LOOKUP_TARGET_S = 1.5
GROWTH_SLACK = 1.25  # "roughly linear": at most 1.25 times the ratio of the sizes (2.5x from 2,000 to 4,000)
INVENTORY = """\
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""
INFO_TASK = "List every image"
LOOKUP_TASK = "Resolve every name"
INFO_PLAYBOOK = f"""\
- name: Info module
  hosts: localhost
  gather_facts: false
  tasks:
    - name: {INFO_TASK}
      arvados.cluster.arvados_docker_image_info:
      register: listing
    - name: Check the count
      ansible.builtin.assert:
        that: listing.images | length == bench_count | int
"""
# The same task with nothing registered, to show what ansible-core's handling of a registered listing costs.
INFO_UNREGISTERED_PLAYBOOK = f"""\
- name: Info module, result not registered
  hosts: localhost
  gather_facts: false
  tasks:
    - name: {INFO_TASK}
      arvados.cluster.arvados_docker_image_info:
"""
LOOKUP_PLAYBOOK = f"""\
- name: Lookup
  hosts: localhost
  gather_facts: false
  tasks:
    - name: {LOOKUP_TASK}
      ansible.builtin.set_fact:
        resolved: "{{{{ query('arvados.cluster.arvados_docker_image', *bench_names) }}}}"
    - name: Check the count
      ansible.builtin.assert:
        that: resolved | length == bench_names | length
"""


# Seeding

def plan_images(count: int) -> list[tuple[str, str, str]]:
    """(repo:tag, image id hex, image timestamp) for `count` images; names 0, 20, 40... hold three, 10, 30... two."""
    images: list[tuple[str, str, str]] = []
    name_index = 0
    while len(images) < count:
        copies = {0: 3, 10: 2}.get(name_index % 20, 1)
        for copy in range(min(copies, count - len(images))):
            image_hex = f"{name_index:032x}{copy:032x}"
            timestamp = f"{2020 + copy}-01-01T00:{name_index // 60 % 60:02d}:{name_index % 60:02d}.000000000Z"
            images.append((f"bench/img{name_index:04d}:1", image_hex, timestamp))
        name_index += 1
    return images


def seed(emulator: Emulator, count: int) -> list[str]:
    """Stores `count` images in a new project of alice's, concurrently; returns every repo:tag."""
    project = emulator.api("alice").groups().create(
        body={"group": {"name": "bench scale", "group_class": "project"}}).execute()
    local = threading.local()

    def store(image: tuple[str, str, str]) -> None:
        if not hasattr(local, "images"):
            local.images = ImageCollections(emulator.api("alice", num_retries=3))
        repo_tag, image_hex, timestamp = image
        local.images.image(image_hex, owner_uuid=project["uuid"], image_timestamp=timestamp, repo_tags=[repo_tag])

    images = plan_images(count)
    with concurrent.futures.ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(store, images))
    return sorted({repo_tag for repo_tag, _hex, _timestamp in images})


# Measuring

def api_requests(emulator: Emulator) -> int:
    return sum(emulator.request_log()["counts"].get("api", {}).values())


def junit_task_time(junit_dir: pathlib.Path, task_name: str) -> float:
    times = [float(case.get("time") or 0) for report in junit_dir.glob("*.xml")
             for case in ElementTree.parse(report).iter("testcase") if case.get("name", "").endswith(f": {task_name}")]
    if len(times) != 1:
        raise SystemExit(f"expected one junit entry for {task_name!r}, found {len(times)}")
    return times[0]


class Scale:
    """The four measurements on one seeded emulator."""

    def __init__(self, work: pathlib.Path, emulator: Emulator, names: list[str], count: int,
                 collections_path: pathlib.Path) -> None:
        self.work, self.emulator, self.count = work, emulator, count
        self.env = dict(os.environ, **emulator.env())
        self.junit_dir = work / "junit"
        self.ansible_env = dict(self.env, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_NOCOLOR="1",
                                ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit", JUNIT_OUTPUT_DIR=str(self.junit_dir),
                                JUNIT_HIDE_TASK_ARGUMENTS="true",
                                ANSIBLE_LOCAL_TEMP=str(work / "tmp"), ANSIBLE_REMOTE_TMP=str(work / "tmp"))
        (work / "inventory.yml").write_text(INVENTORY, encoding="utf-8")
        (work / "info.yml").write_text(INFO_PLAYBOOK, encoding="utf-8")
        (work / "lookup.yml").write_text(LOOKUP_PLAYBOOK, encoding="utf-8")
        (work / "info-unregistered.yml").write_text(INFO_UNREGISTERED_PLAYBOOK, encoding="utf-8")
        (work / "vars.json").write_text(json.dumps({"bench_names": names, "bench_count": count}), encoding="utf-8")

    def keepdocker_images(self) -> dict[str, t.Any]:
        self.emulator.reset_request_log()
        wall, output = timed([str(BIN / "arv-keepdocker"), "images"], self.env)
        listed = sum("-4zz18-" in line for line in output.splitlines())
        if listed != self.count:
            raise SystemExit(f"arv-keepdocker images listed {listed} of {self.count} images:\n{output[-3000:]}")
        return {"time_s": wall, "api_requests": api_requests(self.emulator)}

    def list_images_in_arv(self) -> dict[str, t.Any]:
        from arvados.commands.keepdocker import list_images_in_arv  # pylint: disable=import-outside-toplevel
        api = self.emulator.api("alice")
        self.emulator.reset_request_log()
        started = time.perf_counter()
        listed = list_images_in_arv(api, 3)
        elapsed = time.perf_counter() - started
        if len(listed) != self.count:
            raise SystemExit(f"list_images_in_arv listed {len(listed)} of {self.count} images")
        return {"time_s": elapsed, "api_requests": api_requests(self.emulator)}

    def playbook(self, playbook: str, task_name: str) -> dict[str, t.Any]:
        for old in self.junit_dir.glob("*.xml"):
            old.unlink()
        self.emulator.reset_request_log()
        command = [str(BIN / "ansible-playbook"), "-i", str(self.work / "inventory.yml"), str(self.work / playbook),
                   "-e", f"@{self.work / 'vars.json'}"]
        wall, _output = timed(command, self.ansible_env)
        return {"time_s": junit_task_time(self.junit_dir, task_name), "wall_s": wall,
                "api_requests": api_requests(self.emulator)}

    def measure(self, tool: str) -> dict[str, t.Any]:
        if tool == "info module":
            return self.playbook("info.yml", INFO_TASK)
        if tool == UNREGISTERED:
            return self.playbook("info-unregistered.yml", INFO_TASK)
        if tool == "lookup, every name":
            return self.playbook("lookup.yml", LOOKUP_TASK)
        return self.keepdocker_images() if tool == "arv-keepdocker images" else self.list_images_in_arv()


UNREGISTERED = "info module, not registered"
TOOLS = ["arv-keepdocker images", "list_images_in_arv", "info module", UNREGISTERED, "lookup, every name"]


def bench_size(scratch: pathlib.Path, count: int, rounds: int, collections_path: pathlib.Path) -> dict[str, t.Any]:
    """Seeds a fresh emulator with `count` images and measures every tool `rounds` times."""
    work = scratch / f"size-{count}"
    work.mkdir()
    emulator = Emulator(work / "emulator").start()
    try:
        started = time.perf_counter()
        names = seed(emulator, count)
        seeding = time.perf_counter() - started
        print(f"{count} images ({len(names)} names) seeded in {seeding:.1f} s", file=sys.stderr, flush=True)
        scale = Scale(work, emulator, names, count, collections_path)
        measured = []
        for index in range(rounds):
            order = TOOLS if index % 2 == 0 else TOOLS[::-1]
            measured.append({tool: scale.measure(tool) for tool in order})
            print(f"{count} images, round {index + 1}: " + ", ".join(
                f"{tool} {measured[-1][tool]['time_s']:.2f} s" for tool in TOOLS), file=sys.stderr, flush=True)
    finally:
        emulator.stop()
    return {"images": count, "names": len(names), "seeding_s": seeding, "rounds": measured}


# Reporting

def median(result: dict[str, t.Any], tool: str, key: str = "time_s") -> float:
    return statistics.median(float(measured[tool][key]) for measured in result["rounds"])


def size_table(result: dict[str, t.Any]) -> list[str]:
    lines = [f"### {result['images']} images, {result['names']} names (seeded in {result['seeding_s']:.0f} s)", "",
             "| tool | median time (s) | ansible-playbook wall (s) | API requests | ms per image |",
             "| --- | --- | --- | --- | --- |"]
    for tool in TOOLS:
        time_s = median(result, tool)
        wall = f"{median(result, tool, 'wall_s'):.2f}" if "wall_s" in result["rounds"][0][tool] else "-"
        lines.append(f"| {tool} | {time_s:.2f} | {wall} | {median(result, tool, 'api_requests'):.0f} | "
                     f"{1000 * time_s / result['images']:.2f} |")
    ratio = median(result, "info module") / median(result, "arv-keepdocker images")
    bare = median(result, UNREGISTERED) / median(result, "arv-keepdocker images")
    lines += ["", f"info module task / arv-keepdocker images wall: {ratio:.2f} registered, {bare:.2f} not registered; "
              f"lookup of every name, task time: {median(result, 'lookup, every name'):.2f} s.", ""]
    return lines


def verdicts(results: list[dict[str, t.Any]]) -> list[str]:
    def said(met: bool) -> str:
        return "met" if met else "NOT met"

    info_ok = all(median(r, "info module") <= median(r, "arv-keepdocker images") for r in results)
    largest = results[-1]
    lines = [f"- info module task time (result registered) ≤ `arv-keepdocker images` wall at every size: {said(info_ok)}",
             f"- lookup of every name ≤ {LOOKUP_TARGET_S} s task time at {largest['images']} images "
             f"({median(largest, 'lookup, every name'):.2f} s): {said(median(largest, 'lookup, every name') <= LOOKUP_TARGET_S)}"]
    if len(results) >= 2:
        smaller = results[-2]
        allowed = GROWTH_SLACK * largest["images"] / smaller["images"]
        for tool in ("info module", "lookup, every name"):
            growth = median(largest, tool) / median(smaller, tool)
            lines.append(f"- {tool} grows roughly linearly, time at {largest['images']} ≤ {allowed:.1f} × time at "
                         f"{smaller['images']} ({growth:.2f}×): {said(growth <= allowed)}")
    return lines


def markdown(results: list[dict[str, t.Any]], rounds: int, command: str) -> str:
    lines = ["# Benchmark: listing and resolving images at scale", "",
             "Each size on a fresh emulator seeded with that many images in one project (one collection, one "
             "`docker_image_hash` and one `docker_image_repo+tag` link each; one name in ten holds two or three images). "
             f"Median of {rounds} round(s), the tools alternating. Times: `arv-keepdocker images` the whole process, "
             "`list_images_in_arv(api, 3)` the call alone, the module and lookup their task's time (junit callback), "
             "with the whole ansible-playbook run beside it. API requests include each tool's discovery and config reads. "
             f"Command: `{command}`.", ""]
    for result in results:
        lines += size_table(result)
    lines += ["Time per image (ms), by size: " + "; ".join(
        f"{tool}: " + ", ".join(f"{1000 * median(r, tool) / r['images']:.2f} at {r['images']}" for r in results)
        for tool in TOOLS), "", "## Targets", ""] + verdicts(results) + [""]
    return "\n".join(lines)


def main() -> int:
    parser = bench_arguments(__doc__, rounds=3)
    parser.add_argument("--sizes", default="200,2000,4000", help="comma-separated numbers of images")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    collections_path = args.collections_path.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch_name:
        scratch = pathlib.Path(scratch_name)
        (scratch / "home").mkdir()
        os.environ.update(HOME=str(scratch / "home"), XDG_CACHE_HOME=str(scratch / "home" / ".cache"))
        results = [bench_size(scratch, size, args.rounds, collections_path) for size in sizes]
    command = f"make bench-scale BENCH_SCALE_SIZES={','.join(map(str, sizes))} BENCH_SCALE_ROUNDS={args.rounds}"
    return publish(markdown(results, args.rounds, command), results, args)


if __name__ == "__main__":
    sys.exit(main())
