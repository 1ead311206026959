"""The arvados_docker_image module against arv-keepdocker, in one run, on the same emulator and dockerd.

    .venv/bin/python bench/module_vs_keepdocker.py [--size-mb 400] [--rounds 1] [--json FILE] [--markdown FILE]

For each round and tool: a fresh emulator, an upload of the same image, then a no-op run. The module runs
both ways a local task can run it: in the controller (the inventory's interpreter is the python running
ansible-playbook, so the action plugin runs the module's code in the task's worker process) and shipped
(the interpreter is a wrapper script around the same python, so AnsiballZ runs the module in a process of
its own). Measured: wall time of the command; the module's task time (the junit callback's time for the
task); peak RSS of the whole process tree and of the process that runs the module's code (the ansible
worker, the AnsiballZ process, or arv-keepdocker); the largest size the private HOME and TMPDIR reach
(temporary files); API and Keep requests from the emulator's request log. Processes are sampled every
20 ms with psutil.
"""
from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from xml.etree import ElementTree

import psutil

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.docker_env import DockerDaemon, ImageFactory  # noqa: E402  pylint: disable=wrong-import-position
from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position
from common import bench_arguments, publish  # noqa: E402  pylint: disable=wrong-import-position

BIN = pathlib.Path(sys.executable).parent
MB = 1000 * 1000
MIB = 1 << 20
SAMPLE_SECONDS = 0.02
PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: ensure the image
      arvados.cluster.arvados_docker_image:
        name: "{{ image }}"
        docker_host: "{{ docker_host }}"
"""
INVENTORY = "localhost ansible_connection=local ansible_python_interpreter={python}\n"
# The ways the module runs, and the labels of their columns.
CONTROLLER, SHIPPED = "controller", "shipped"
TOOLS = {"keepdocker": "arv-keepdocker", CONTROLLER: "module in the controller", SHIPPED: "module shipped"}


class TreeSampler:
    """Samples a process tree: peak total RSS, peak RSS of the process matching `worker`, largest folder sizes."""

    def __init__(self, root_pid: int, worker: t.Callable[[psutil.Process], bool], folders: t.Sequence[pathlib.Path]) -> None:
        self.root = psutil.Process(root_pid)
        self.worker = worker
        self.folders = folders
        self.peak_tree = self.peak_worker = self.peak_folders = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(SAMPLE_SECONDS)

    def _sample(self) -> None:
        tree_rss = 0
        try:
            processes = [self.root] + self.root.children(recursive=True)
        except psutil.Error:
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
                if self.worker(process):
                    self.peak_worker = max(self.peak_worker, rss)
            except psutil.Error:
                continue
            tree_rss += rss
        self.peak_tree = max(self.peak_tree, tree_rss)
        self.peak_folders = max(self.peak_folders, sum(folder_size(folder) for folder in self.folders))


def folder_size(folder: pathlib.Path) -> int:
    total = 0
    for path, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(path, name)).st_size
            except OSError:
                continue
    return total


def is_module_process(process: psutil.Process) -> bool:
    return any("AnsiballZ_arvados_docker_image" in part for part in process.cmdline())


def is_ansible_worker(process: psutil.Process) -> bool:
    """A task's worker: a fork of ansible-playbook (the sampler sees the main process too; it is the smaller one)."""
    return process.ppid() != os.getpid() and any(part.endswith("ansible-playbook") for part in process.cmdline()[:2])


def is_keepdocker_process(process: psutil.Process) -> bool:
    return any(part.endswith("arv-keepdocker") for part in process.cmdline()[:2])


def run_sampled(command: list[str], env: dict[str, str], worker: t.Callable[[psutil.Process], bool],
                folders: t.Sequence[pathlib.Path]) -> dict[str, t.Any]:
    started = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        with TreeSampler(process.pid, worker, folders) as sampler:
            stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({process.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_tree_rss_mb": sampler.peak_tree / MB, "peak_worker_rss_mb": sampler.peak_worker / MB,
            "peak_temp_mb": sampler.peak_folders / MB, "stdout": stdout}


def request_counts(emulator: Emulator) -> dict[str, int]:
    counts = emulator.request_log()["counts"]
    api = counts.get("api", {})
    keep = counts.get("keep", {})
    return {"api_requests": sum(api.values()), "keep_puts": sum(n for key, n in keep.items() if key.startswith("PUT "))}


class Bench:
    """One tool measured on a fresh emulator: an upload, then a no-op run."""

    def __init__(self, work: pathlib.Path, daemon: DockerDaemon, image_ref: str) -> None:
        self.work = work
        self.daemon = daemon
        self.image_ref = image_ref

    def private_env(self, emulator: Emulator, name: str) -> tuple[dict[str, str], list[pathlib.Path]]:
        home, tmp = self.work / name / "home", self.work / name / "tmp"
        for folder in (home, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **emulator.env(), **self.daemon.env(), HOME=str(home), TMPDIR=str(tmp),
                   PATH=f"/usr/bin:{BIN}:{os.environ.get('PATH', '')}")
        return env, [home, tmp]

    def keepdocker(self, emulator: Emulator) -> dict[str, dict[str, t.Any]]:
        env, folders = self.private_env(emulator, "keepdocker")
        repo, tag = self.image_ref.rsplit(":", 1)
        results = {}
        for phase in ("upload", "no-op"):
            emulator.reset_request_log()
            result = run_sampled([str(BIN / "arv-keepdocker"), repo, tag], env, is_keepdocker_process, folders)
            result.update(request_counts(emulator))
            result["collection_uuid"] = result.pop("stdout").strip().splitlines()[-1]
            results[phase] = result
        return results

    def module(self, emulator: Emulator, collections_path: pathlib.Path, way: str) -> dict[str, dict[str, t.Any]]:
        env, folders = self.private_env(emulator, way)
        folder = self.work / way
        (folder / "bench.yml").write_text(PLAYBOOK, encoding="utf-8")
        (folder / "inventory").write_text(INVENTORY.format(python=interpreter(folder, way)), encoding="utf-8")
        junit_dir = folder / "junit"
        env.update(ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit",
                   JUNIT_OUTPUT_DIR=str(junit_dir), ANSIBLE_LOCAL_TEMP=str(folder / "tmp"), ANSIBLE_REMOTE_TMP=str(folder / "tmp"))
        command = [str(BIN / "ansible-playbook"), "-i", str(folder / "inventory"), str(folder / "bench.yml"),
                   "-e", json.dumps({"image": self.image_ref, "docker_host": self.daemon.docker_host})]
        results = {}
        for phase in ("upload", "no-op"):
            emulator.reset_request_log()
            for old in junit_dir.glob("*.xml"):
                old.unlink()
            result = run_sampled(command, env, is_module_process if way == SHIPPED else is_ansible_worker, folders)
            result.update(request_counts(emulator))
            result["task_s"] = junit_task_time(junit_dir, "ensure the image")
            result["changed"] = "changed=1" in result.pop("stdout")
            results[phase] = result
        return results


def interpreter(folder: pathlib.Path, way: str) -> str:
    """This python for the controller way; for the shipped way, a wrapper script that runs it (another program)."""
    if way == CONTROLLER:
        return sys.executable
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return str(wrapper)


def junit_task_time(junit_dir: pathlib.Path, task_name: str) -> float:
    for report in junit_dir.glob("*.xml"):
        for case in ElementTree.parse(report).iter("testcase"):
            if task_name in (case.get("name") or ""):
                return float(case.get("time") or 0)
    raise SystemExit(f"no junit time for task {task_name!r} in {junit_dir}")


def run_round(work: pathlib.Path, daemon: DockerDaemon, image_ref: str, collections_path: pathlib.Path) -> dict[str, t.Any]:
    bench = Bench(work, daemon, image_ref)
    measured = {}
    for tool in TOOLS:
        emulator = Emulator(work / f"emulator-{tool}").start()
        try:
            measured[tool] = bench.keepdocker(emulator) if tool == "keepdocker" else bench.module(emulator, collections_path, tool)
            measured[tool]["portable_data_hash"] = emulator.api().collections().get(
                uuid=latest_collection(emulator)).execute()["portable_data_hash"]
        finally:
            emulator.stop()
    return measured


def latest_collection(emulator: Emulator) -> str:
    items = emulator.api().collections().list(order=["created_at desc"], limit=1).execute()["items"]
    return items[0]["uuid"]


def median(rounds: list[dict[str, t.Any]], tool: str, phase: str, key: str) -> float:
    return statistics.median(float(measured[tool][phase][key]) for measured in rounds)


ROWS = (
    ("upload", "wall_s", "wall time (s)"),
    ("upload", "task_s", "task time, junit (s)"),
    ("upload", "peak_worker_rss_mb", "peak RSS of the process running the upload code (MB)"),
    ("upload", "peak_tree_rss_mb", "peak RSS of the whole process tree (MB)"),
    ("upload", "peak_temp_mb", "largest temporary files in HOME and TMPDIR (MB)"),
    ("upload", "keep_puts", "Keep PUTs"),
    ("no-op", "wall_s", "wall time (s)"),
    ("no-op", "task_s", "task time, junit (s)"),
    ("no-op", "api_requests", "API requests"),
    ("no-op", "keep_puts", "Keep PUTs"),
)


def markdown(rounds: list[dict[str, t.Any]], size_mb: int, command: str) -> str:
    ways = [way for way in TOOLS if way != "keepdocker"]
    lines = [
        "# Benchmark: arvados_docker_image against arv-keepdocker", "",
        f"Image: {size_mb} MB of random payload in one layer, built offline in a private dockerd (vfs). "
        f"Median of {len(rounds)} round(s); each tool runs on a fresh emulator, upload then no-op. Command: `{command}`.", "",
        "The module runs both ways a local task runs it: in the controller (implicit localhost, or an inventory whose "
        "interpreter is the controller's python: the action plugin runs the module's code in the task's worker) and "
        "shipped (any other interpreter: AnsiballZ runs it in a process of its own). Task times are the junit "
        "callback's; arv-keepdocker's column there is its process wall time. The worker's RSS includes the pages it "
        "shares with ansible-playbook, which it is forked from.", "",
        "| phase | measure | " + " | ".join(TOOLS.values()) + " | " + " | ".join(f"{TOOLS[way]} / arv-keepdocker" for way in ways) + " |",
        "| --- | --- |" + " --- |" * (len(TOOLS) + len(ways)),
    ]
    for phase, key, label in ROWS:
        theirs = median(rounds, "keepdocker", phase, "wall_s" if key == "task_s" else key)
        ours = [median(rounds, way, phase, key) for way in ways]
        ratios = [f"{value / theirs:.2f}" if theirs else "-" for value in ours]
        lines.append(f"| {phase} | {label} | {theirs:.2f} | " + " | ".join(f"{value:.2f}" for value in ours) + " | " + " | ".join(ratios) + " |")
    same = {measured[way]["portable_data_hash"] == measured["keepdocker"]["portable_data_hash"] for measured in rounds for way in ways}
    lines += ["", f"Same portable data hash from arv-keepdocker and both ways of the module: {'yes' if same == {True} else 'NO'}.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = bench_arguments(__doc__, rounds=1)
    parser.add_argument("--size-mb", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = pathlib.Path(scratch)
        daemon = DockerDaemon(work / "dockerd").start()
        try:
            built = ImageFactory(daemon, work / "images").build("bench/image", "1", size=args.size_mb * MB)
            rounds = [run_round(work / f"round-{index}", daemon, built.ref, args.collections_path) for index in range(args.rounds)]
        finally:
            daemon.stop()
    command = f"make bench BENCH_SIZE_MB={args.size_mb} BENCH_ROUNDS={args.rounds}"
    report = markdown(rounds, args.size_mb, command)
    return publish(report, rounds, args)


if __name__ == "__main__":
    sys.exit(main())
