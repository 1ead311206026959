"""Process control for the Arvados emulator, used by the tests, the Makefile, the demo and the benchmarks.

    emu = Emulator(tmp_path / "emulator").start()
    api = emu.api("alice")            # an arvados.api client for the user alice
    emu.inject_fault("PUT", "/*", status=503)
    emu.stop()

As a command: python tests/harness/emulator.py up --data-dir DIR [--port N]   (prints the ready file)
              python tests/harness/emulator.py down --data-dir DIR
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import typing as t

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVE = REPO_ROOT / "tests" / "emulator" / "serve.py"
STOP_GRACE_SECONDS = 10


def _log_tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class EmulatorError(RuntimeError):
    """The emulator did not start, or an admin call failed."""


class Emulator:
    """One emulator process on one data directory; restarts keep the directory, tokens and (after the first start) the port."""

    def __init__(self, data_dir: pathlib.Path, port: int = 0, docker_image_formats: list[str] | None = None,
                 python: str = sys.executable, cluster_id: str | None = None) -> None:
        self.data_dir = pathlib.Path(data_dir)
        self.cluster_id = cluster_id
        self.port = port
        self.docker_image_formats = list(docker_image_formats or ["v2"])
        self.python = python
        self.process: subprocess.Popen | None = None
        self._ready: dict | None = None

    # Lifecycle

    @property
    def ready_file(self) -> pathlib.Path:
        return self.data_dir / "ready.json"

    @property
    def log_file(self) -> pathlib.Path:
        return self.data_dir / "server.log"

    def command(self) -> list[str]:
        return [self.python, str(SERVE), "--data-dir", str(self.data_dir), "--ready-file", str(self.ready_file),
                "--port", str(self.port), "--docker-image-formats", ",".join(self.docker_image_formats),
                *(["--cluster-id", self.cluster_id] if self.cluster_id else [])]

    def start(self, timeout: float = 60) -> Emulator:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, cwd=REPO_ROOT)
        try:
            self._ready = self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.port = int(self._ready["api_host"].rsplit(":", 1)[1])
        return self

    def _wait_until_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise EmulatorError(f"emulator exited with status {self.process.returncode}:\n{_log_tail(self.log_file)}")
            if self.ready_file.exists():
                ready = json.loads(self.ready_file.read_text())
                if self.process is None or ready.get("pid") == self.process.pid:
                    return ready
            time.sleep(0.05)
        raise EmulatorError(f"emulator not ready after {timeout} s:\n{_log_tail(self.log_file)}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, timeout: float = 60) -> Emulator:
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # What clients need

    @property
    def ready(self) -> dict:
        if self._ready is None:
            raise EmulatorError("the emulator has not been started")
        return self._ready

    @property
    def api_host(self) -> str:
        return self.ready["api_host"]

    @property
    def api_token(self) -> str:
        return self.ready["api_token"]

    @property
    def insecure(self) -> bool:
        return bool(self.ready["insecure"])

    @property
    def users(self) -> dict[str, dict[str, str]]:
        return self.ready["users"]

    @property
    def uuid_prefix(self) -> str:
        return self.ready["cluster_id"]

    @property
    def system_user_uuid(self) -> str:
        return self.ready["system_user_uuid"]

    @property
    def admin_token(self) -> str:
        return self.users["admin"]["token"]

    @property
    def keep_url(self) -> str:
        return self.ready["keep_url"]

    @property
    def certificate(self) -> str:
        return self.ready["certificate"]

    def token(self, user: str = "alice") -> str:
        return self.users[user]["token"]

    def env(self, user: str = "alice") -> dict[str, str]:
        return {"ARVADOS_API_HOST": self.api_host, "ARVADOS_API_TOKEN": self.token(user), "ARVADOS_API_HOST_INSECURE": "1"}

    def api(self, user: str = "alice", num_retries: int = 2) -> t.Any:
        import arvados
        return arvados.api("v1", host=self.api_host, token=self.token(user), insecure=True, num_retries=num_retries)

    # The admin endpoint

    def admin_call(self, method: str, path: str, payload: dict | None = None) -> dict:
        import requests
        response = requests.request(method, f"https://{self.api_host}{path}", json=payload, timeout=30,
                                    headers={"Authorization": f"Bearer {self.admin_token}"}, verify=self.certificate)
        if response.status_code >= 400:
            raise EmulatorError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def request_log(self) -> dict:
        """{"counts": {"api": {"GET /arvados/v1/...": n}, "keep": {...}}, "routes": {...}, "entries": [...]}"""
        return self.admin_call("GET", "/_emulator/requests")

    def reset_request_log(self) -> None:
        self.admin_call("DELETE", "/_emulator/requests")

    def inject_fault(self, method: str, path: str, status: int | None = None, count: int = 1,
                     drop_after_bytes: int | None = None, message: str | None = None, service: str | None = None) -> dict:
        payload = {"method": method, "path": path, "status": status, "count": count,
                   "drop_after_bytes": drop_after_bytes, "message": message, "service": service}
        return self.admin_call("POST", "/_emulator/faults", payload)["fault"]

    def set_latency(self, method: str, path: str, seconds: float, service: str | None = None) -> None:
        self.admin_call("POST", "/_emulator/latency", {"method": method, "path": path, "seconds": seconds, "service": service})

    def clear_faults(self) -> None:
        self.admin_call("DELETE", "/_emulator/faults")

    def set_docker_image_formats(self, formats: list[str]) -> None:
        self.admin_call("PUT", "/_emulator/config", {"dockerImageFormats": list(formats)})

    def mint_token(self, user: str, expires_at: str | None) -> str:
        return self.admin_call("POST", "/_emulator/tokens", {"user": user, "expires_at": expires_at})["api_token"]


# The command line, for the Makefile and the demo: a detached emulator tracked by DIR/pid.

def _is_our_emulator(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return str(SERVE).encode() in cmdline.read()
    except OSError:
        return False


def command_up(data_dir: pathlib.Path, port: int, formats: list[str], cluster_id: str | None = None) -> int:
    pid_file = data_dir / "pid"
    if pid_file.exists() and _is_our_emulator(int(pid_file.read_text().strip() or 0)):
        print((data_dir / "ready.json").read_text())
        return 0
    emulator = Emulator(data_dir, port=port, docker_image_formats=formats, cluster_id=cluster_id).start()
    pid_file.write_text(f"{emulator.ready['pid']}\n")
    print(json.dumps(emulator.ready, indent=2, sort_keys=True))
    return 0


def command_down(data_dir: pathlib.Path) -> int:
    pid_file = data_dir / "pid"
    if not pid_file.exists():
        return 0
    pid = int(pid_file.read_text().strip() or 0)
    if pid and _is_our_emulator(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while _is_our_emulator(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_our_emulator(pid):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start or stop a detached Arvados emulator.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the emulator in the background and print its ready file")
    up.add_argument("--data-dir", required=True, type=pathlib.Path)
    up.add_argument("--port", type=int, default=0)
    up.add_argument("--docker-image-formats", default="v2")
    up.add_argument("--cluster-id", help="the five-character uuid prefix (default zzzzz)")
    down = commands.add_parser("down", help="stop the emulator started by up")
    down.add_argument("--data-dir", required=True, type=pathlib.Path)
    arguments = parser.parse_args(argv)
    data_dir = arguments.data_dir.resolve()
    if arguments.command == "up":
        return command_up(data_dir, arguments.port, arguments.docker_image_formats.split(","), arguments.cluster_id)
    return command_down(data_dir)


if __name__ == "__main__":
    sys.exit(main())
