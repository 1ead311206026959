"""Drive the collection through ansible-playbook: a staged copy of the collection, small playbooks, parsed results.

Every run gets a playbook of its own (one task, or several for the bad-input table), an inventory of localhost
with the local connection, a HOME private to the runner (shared by the runs of one runner, as runs on one host share
it), `-vvv`, and a callback that writes each task's result as JSON, so a test reads the result exactly as
ansible-core handed it on.

The inventory decides where the module's code runs. With this venv's python as the interpreter (CONTROLLER), the
action plugin runs it in the controller's task process; with a wrapper script that starts the same python
(SHIPPED), the interpreter is another program, so the module is shipped and run by AnsiballZ. With -vvv each run
says which happened, and a runner fails the test when its runs took the other way.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

import psutil

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CALLBACK_DIR = pathlib.Path(__file__).resolve().parent / "callback_plugins"
BIN = pathlib.Path(sys.executable).parent
COLLECTION_PARTS = ("galaxy.yml", "meta", "plugins", "roles")
MODULE = "arvados.cluster.arvados_docker_image"
# Variables of the test process that would leak into the runs and change what they do.
LEAKY_VARIABLE_PREFIXES = ("ARVADOS_", "DOCKER_", "ANSIBLE_")
RUN_TIMEOUT = 300
SHORT_TEMP_PARENT = "/tmp"
CONTROLLER, SHIPPED = "controller", "shipped"
EXECUTIONS = (CONTROLLER, SHIPPED)
# What -vvv prints when the image module runs each way.
RAN_IN_CONTROLLER = "RUN IN CONTROLLER arvados.cluster.arvados_docker_image"
RAN_SHIPPED = "AnsiballZ_arvados_docker_image.py"


def stage_collection(root: pathlib.Path) -> pathlib.Path:
    """Copy the collection's runtime files under root/ansible_collections/arvados/cluster; returns root."""
    target = root / "ansible_collections" / "arvados" / "cluster"
    target.mkdir(parents=True)
    for part in COLLECTION_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__", "molecule"))
        elif source.exists():
            shutil.copy2(source, target / part)
    return root


@dataclasses.dataclass
class PlaybookRun:
    """What one ansible-playbook run printed and returned; `results` maps task names to their results."""

    rc: int
    stdout: str
    stderr: str
    results: dict[str, dict[str, t.Any]]
    elapsed: float

    @property
    def output(self) -> str:
        return f"{self.stdout}\n{self.stderr}"

    @property
    def result(self) -> dict[str, t.Any]:
        """The result of the task under test."""
        return self.results.get(TASK_UNDER_TEST, {})

    @property
    def failed(self) -> bool:
        return self.result.get("_status") == "failed"

    def first_failure(self) -> dict[str, t.Any] | None:
        """The result of the first task that failed, whichever it was."""
        return next((result for result in self.results.values() if result.get("_status") == "failed"), None)

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))

    def executions(self) -> set[str]:
        """Which ways the image module ran in this run, as -vvv told."""
        return {name for name, marker in ((CONTROLLER, RAN_IN_CONTROLLER), (SHIPPED, RAN_SHIPPED)) if marker in self.stdout}

    def everything(self) -> str:
        """All text a user could see: the output and every result."""
        return f"{self.output}\n{json.dumps(self.results)}"

    def describe(self) -> str:
        return f"rc={self.rc} result={json.dumps(self.result, indent=1)[:4000]}\nstderr tail: {self.stderr[-2000:]}"


TASK_UNDER_TEST = "under test"


def module_task(args: dict[str, t.Any], module: str = MODULE, **keywords: t.Any) -> dict[str, t.Any]:
    """The task under test, which may fail without ending the play."""
    return {"name": TASK_UNDER_TEST, module: args, "ignore_errors": True, **keywords}


class RunningPlaybook:
    """A playbook started in the background, for tests that act on it while it runs."""

    def __init__(self, process: subprocess.Popen, finish: t.Callable[[RunningPlaybook, float], PlaybookRun]) -> None:
        self.process = process
        self._finish = finish
        self.started = time.monotonic()
        self.ended: float | None = None
        # Runs waited for one after another still get their own end times.
        threading.Thread(target=self._note_end, daemon=True).start()

    def _note_end(self) -> None:
        self.process.wait()
        self.ended = time.monotonic()

    def module_processes(self, module_name: str = "arvados_docker_image") -> list[psutil.Process]:
        """The module processes this playbook runs (the AnsiballZ wrapper and anything it started)."""
        marker = f"AnsiballZ_{module_name}.py"
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if any(marker in part for part in child.cmdline()):
                    found.append(child)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return found

    def kill_module(self) -> int:
        """SIGKILL the module's processes; returns how many were killed."""
        processes = self.module_processes()
        for process in processes:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
        return len(processes)

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = RUN_TIMEOUT) -> PlaybookRun:
        return self._finish(self, timeout)


class AnsibleRunner:
    """Runs one-task playbooks against the staged collection as one managed host would: same HOME for all runs."""

    def __init__(self, collections_path: pathlib.Path, work_dir: pathlib.Path, execution: str = CONTROLLER,
                 python: str = sys.executable) -> None:
        self.collections_path = collections_path
        self.work_dir = work_dir
        self.execution = execution
        # The controller's python, and the managed host's (itself, or a wrapper that runs it).
        self.python = python
        self.executions_seen: set[str] = set()
        self.home = work_dir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.interpreter = python if execution == CONTROLLER else self._python_wrapper()
        # ansible-core puts unix sockets in TMPDIR, whose paths must stay short.
        self.temp = pathlib.Path(tempfile.mkdtemp(prefix="arvft-", dir=SHORT_TEMP_PARENT))
        self._numbers = itertools.count(1)
        self._processes: list[subprocess.Popen] = []

    def _python_wrapper(self) -> str:
        """A program that is not this python but runs it: the module is shipped to it as to any other interpreter."""
        wrapper = self.work_dir / "python"
        wrapper.write_text(f'#!/bin/sh\nexec {self.python} "$@"\n', encoding="utf-8")
        wrapper.chmod(0o755)
        return str(wrapper)

    def check_execution(self, run: PlaybookRun) -> None:
        """Fail when the image module ran another way than this runner's inventory asks for."""
        seen = run.executions()
        assert seen <= {self.execution}, f"the image module ran as {sorted(seen)}, not {self.execution} only:\n{run.describe()}"
        self.executions_seen |= seen

    def close(self) -> None:
        """Stop any playbook a failed test left running, and remove the temporary directory."""
        for process in self._processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.temp, ignore_errors=True)

    def environment(self, extra: t.Mapping[str, str] | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(LEAKY_VARIABLE_PREFIXES)}
        temp = self.temp
        env.update(
            HOME=str(self.home), TMPDIR=str(temp), PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            ANSIBLE_COLLECTIONS_PATH=str(self.collections_path), ANSIBLE_CALLBACK_PLUGINS=str(CALLBACK_DIR),
            ANSIBLE_CALLBACKS_ENABLED="result_file", ANSIBLE_LOCAL_TEMP=str(temp / "ansible-local"),
            ANSIBLE_REMOTE_TMP=str(temp / "ansible-remote"), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_DEPRECATION_WARNINGS="0", PYTHONUNBUFFERED="1",
            # Results carry the module's arguments (no_log ones masked), so -vvv prints them: more for a leak to show in.
            ANSIBLE_INJECT_INVOCATION="1",
        )
        env.update(extra or {})
        return env

    def _prepare(self, tasks: list[dict[str, t.Any]], variables: t.Mapping[str, t.Any] | None) -> pathlib.Path:
        folder = self.work_dir / f"run-{next(self._numbers):03d}"
        folder.mkdir()
        play = {"hosts": "localhost", "gather_facts": False, "vars": dict(variables or {}), "tasks": tasks}
        # JSON is YAML, and keeps every value exactly as written.
        (folder / "playbook.yml").write_text(json.dumps([play], indent=1), encoding="utf-8")
        (folder / "inventory").mkdir()
        (folder / "inventory" / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": self.interpreter}}}}), encoding="utf-8")
        return folder

    def start(self, tasks: list[dict[str, t.Any]], env: t.Mapping[str, str] | None = None,
              variables: t.Mapping[str, t.Any] | None = None, check: bool = False, diff: bool = False,
              verbosity: int = 3) -> RunningPlaybook:
        folder = self._prepare(tasks, variables)
        # Run by this runner's python, whatever the script's #! says (a venv reached through a symlink has another path).
        command = [self.python, str(BIN / "ansible-playbook"), "-i", str(folder / "inventory" / "hosts.yml"), str(folder / "playbook.yml")]
        if verbosity:
            command.append("-" + "v" * verbosity)
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        environment = self.environment(env)
        environment["ARVADOS_CLUSTER_TEST_RESULTS"] = str(folder / "results.jsonl")
        stdout = open(folder / "stdout.txt", "wb")
        stderr = open(folder / "stderr.txt", "wb")
        with stdout, stderr:
            process = subprocess.Popen(command, cwd=folder, env=environment, stdin=subprocess.DEVNULL,
                                       stdout=stdout, stderr=stderr, start_new_session=True)
        self._processes.append(process)

        def finish(running: RunningPlaybook, timeout: float) -> PlaybookRun:
            try:
                rc = running.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(running.process.pid, signal.SIGKILL)
                running.process.wait()
                raise
            while running.ended is None:
                time.sleep(0.01)
            run = PlaybookRun(rc=rc, stdout=(folder / "stdout.txt").read_text(errors="replace"),
                              stderr=(folder / "stderr.txt").read_text(errors="replace"),
                              results=read_results(folder / "results.jsonl"), elapsed=running.ended - running.started)
            self.check_execution(run)
            return run

        return RunningPlaybook(process, finish)

    def run(self, tasks: list[dict[str, t.Any]], timeout: float = RUN_TIMEOUT, **options: t.Any) -> PlaybookRun:
        return self.start(tasks, **options).wait(timeout)

    def module(self, args: dict[str, t.Any], timeout: float = RUN_TIMEOUT, **options: t.Any) -> PlaybookRun:
        """Run the module once with these arguments."""
        return self.run([module_task(args)], timeout=timeout, **options)


def read_results(path: pathlib.Path) -> dict[str, dict[str, t.Any]]:
    results: dict[str, dict[str, t.Any]] = {}
    if not path.exists():
        return results
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        results[record["task"]] = {"_status": record["status"], **record["result"]}
    return results
