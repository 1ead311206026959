"""A private Docker daemon, a private registry and an offline image builder.

Used by the pytest fixtures, the Makefile's integration tests, the demo and the benchmarks.
Nothing here talks to Docker Hub: images are built from /bin/busybox and seeded random payloads.

Command line (for the Makefile and the demo):
    python tests/harness/docker_env.py up --state-dir DIR     # starts both, writes and prints DIR/docker.json
    python tests/harness/docker_env.py down --state-dir DIR   # stops both; fine when nothing runs
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import io
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

import docker
import docker.errors
import psutil

if not __package__:  # run as a script (the up/down command line): the harness package is one folder up
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness.docker_tls import DockerTLSFiles, ensure_docker_tls  # noqa: E402  pylint: disable=wrong-import-position

DOCKERD = "/usr/sbin/dockerd"
# /usr/local/bin/docker on these machines is a newer client that PATH finds first.
DOCKER_CLI = "/usr/bin/docker"
REGISTRY_BIN = "/usr/bin/docker-registry"
BUSYBOX = "/bin/busybox"
SHORT_DIR_PARENT = pathlib.Path("/tmp")
RECORD_NAME = "process.json"
CHUNK = 1 << 20
# Layer members get a fixed mtime so that the same build request gives the same layer digest.
LAYER_MTIME = 946684800


class HarnessError(RuntimeError):
    """A service of the harness did not start or stop as expected."""


# ---------------------------------------------------------------- process bookkeeping


def _write_record(path: pathlib.Path, record: dict) -> None:
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _read_record(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _gone(proc: psutil.Process) -> bool:
    """Exited; a zombie counts, as only its parent can reap it and that may be an init that reaps slowly."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _live_process(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The process with this pid, unless it is gone or the pid now belongs to another process."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.5:
            return None
    except psutil.NoSuchProcess:
        return None
    return None if _gone(proc) else proc


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Waits for the processes to exit; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [proc for proc in processes if not _gone(proc)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [proc for proc in alive if not _gone(proc)]
    return alive


def _signal_all(processes: list[psutil.Process], signum: int) -> None:
    for proc in processes:
        try:
            proc.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def _terminate(processes: list[psutil.Process], timeout: float) -> None:
    """SIGTERM, wait, then SIGKILL whatever is left."""
    _signal_all(processes, signal.SIGTERM)
    alive = _wait_gone(processes, timeout)
    if alive:
        _signal_all(alive, signal.SIGKILL)
        _wait_gone(alive, 10)


def _processes_mentioning(text: str) -> list[psutil.Process]:
    """Processes (other than this one) with `text` in an argument of their command line."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(text in arg for arg in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _processes_in_cgroup(marker: str) -> list[psutil.Process]:
    """Processes whose /proc/PID/cgroup names a cgroup path containing `marker`."""
    found = []
    for pid in psutil.pids():
        try:
            cgroups = pathlib.Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8")
            if marker in cgroups:
                found.append(psutil.Process(pid))
        except (OSError, psutil.NoSuchProcess):
            continue
    return found


def _mount_points() -> list[pathlib.Path]:
    points = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        field = line.split(" ")[4]
        # mountinfo escapes space, tab, newline and backslash as octal.
        points.append(pathlib.Path(field.encode().decode("unicode_escape")))
    return points


def _unmount_under(roots: list[pathlib.Path]) -> None:
    """Unmounts everything at or below the roots, deepest first; rounds, since mounts may be stacked."""
    for _round in range(5):
        inside = {point for point in _mount_points() if any(point == root or root in point.parents for root in roots)}
        if not inside:
            return
        for point in sorted(inside, key=lambda path: len(path.parts), reverse=True):
            subprocess.run(["umount", "--lazy", str(point)], check=False, capture_output=True)


def _spawn(argv: list[str], log_path: pathlib.Path, cwd: pathlib.Path) -> subprocess.Popen:
    """Starts a service in its own session with no tie to our terminal, so it outlives a CLI caller."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(  # pylint: disable=consider-using-with
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )


def _wait_until(ready, proc: subprocess.Popen, timeout: float, what: str, log_path: pathlib.Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode}; log {log_path}:\n{_tail(log_path)}")
        if ready():
            return
        time.sleep(0.1)
    raise HarnessError(f"{what} did not answer within {timeout:.0f}s; log {log_path}:\n{_tail(log_path)}")


def _tail(path: pathlib.Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _RecordedService:
    """A detached process of ours, found again by the pid and start time it records in its state dir."""

    log_name: str

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.state_dir = pathlib.Path(state_dir).resolve()
        self._popen: subprocess.Popen | None = None

    @property
    def record_path(self) -> pathlib.Path:
        return self.state_dir / RECORD_NAME

    @property
    def log_path(self) -> pathlib.Path:
        return self.state_dir / self.log_name

    @property
    def pid(self) -> int | None:
        if self._popen is not None:
            return self._popen.pid
        return _read_record(self.record_path).get("pid")

    def running(self) -> bool:
        return self._recorded_process(_read_record(self.record_path)) is not None

    def stop(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _recorded_process(record: dict) -> psutil.Process | None:
        return _live_process(record.get("pid"), record.get("create_time"))

    def _launch(self, argv: list[str], details: dict, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Spawns the service, records it with `details`, and waits until `ready`; stops it again if that fails."""
        self._popen = _spawn(argv, self.log_path, self.state_dir)
        _write_record(self.record_path, {
            "pid": self._popen.pid,
            "create_time": psutil.Process(self._popen.pid).create_time(),
            **details,
        })
        try:
            _wait_until(ready, self._popen, timeout, what, self.log_path)
        except BaseException:
            self.stop()
            raise

    def _reap(self) -> None:
        if self._popen is not None:
            self._popen.wait(timeout=10)
            self._popen = None


# ---------------------------------------------------------------- dockerd


class DockerDaemon(_RecordedService):
    """A dockerd of our own: vfs storage, no iptables, no bridge, its own containerd.

    Besides its unix socket it listens on 127.0.0.1 with TLS, requiring a client certificate signed by its own CA
    (`tls_files`), so that clients' TLS options can be tried for real.
    """

    log_name = "dockerd.log"

    def __init__(self, state_dir: pathlib.Path) -> None:
        super().__init__(state_dir)
        # unix socket paths are limited to ~107 bytes, and containerd nests its sockets under the exec-root.
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        self.short_dir = SHORT_DIR_PARENT / f"arvdk-{digest}"

    @property
    def socket_path(self) -> pathlib.Path:
        return self.short_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def cgroup_parent(self) -> str:
        return self.short_dir.name

    @property
    def tls_files(self) -> DockerTLSFiles:
        return ensure_docker_tls(self.state_dir / "tls")

    @property
    def tls_docker_host(self) -> str:
        """tcp://127.0.0.1:<port> of the TLS listener, while the daemon runs."""
        return _read_record(self.record_path)["tls_docker_host"]

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=600)

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host}

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER_CLI, "-H", self.docker_host, *args], check=True, capture_output=True, text=True)

    def _argv(self, tls_docker_host: str) -> list[str]:
        tls = self.tls_files
        return [
            DOCKERD,
            "--config-file", str(self.state_dir / "daemon.json"),
            "--data-root", str(self.state_dir / "data"),
            "--exec-root", str(self.short_dir / "exec"),
            "--host", self.docker_host,
            "--host", tls_docker_host,
            "--tlsverify", "--tlscacert", str(tls.ca), "--tlscert", str(tls.server_cert), "--tlskey", str(tls.server_key),
            "--pidfile", str(self.state_dir / "docker.pid"),
            "--storage-driver", "vfs",
            "--iptables=false",
            "--ip-forward=false",
            "--bridge=none",
            # A cgroup of our own tells our containers' processes apart from those of any other dockerd.
            "--cgroup-parent", self.cgroup_parent,
        ]

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = docker.DockerClient(base_url=self.docker_host, timeout=5)
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, OSError):
            return False
        finally:
            client.close()

    def start(self, timeout: float = 60) -> DockerDaemon:
        if self.running():
            raise HarnessError(f"a dockerd already runs for {self.state_dir} (pid {self.pid})")
        # Mounts and shims left by a daemon that was killed would trip the new one.
        self.stop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.short_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # An empty config keeps the host's /etc/docker/daemon.json out of our daemon.
        (self.state_dir / "daemon.json").write_text("{}\n", encoding="utf-8")
        tls_docker_host = f"tcp://127.0.0.1:{_free_port()}"
        self._launch(self._argv(tls_docker_host), {"docker_host": self.docker_host, "tls_docker_host": tls_docker_host,
                                                   "short_dir": str(self.short_dir)}, self._answers, timeout, "dockerd")
        return self

    def stop(self) -> None:
        """Stops dockerd and its containerd and shims; a no-op when nothing runs."""
        proc = self._recorded_process(_read_record(self.record_path))
        children = proc.children(recursive=True) if proc is not None else []
        if proc is not None:
            _terminate([proc], timeout=30)
        # dockerd stops its containerd and shims on a clean exit; this catches leftovers. Shims re-parent
        # to init, so they are found by our exec-root in their command line rather than as children.
        leftovers = [*children, *_processes_mentioning(f"{self.short_dir}/"), *_processes_in_cgroup(f"/{self.cgroup_parent}/")]
        _terminate(list({leftover.pid: leftover for leftover in leftovers if not _gone(leftover)}.values()), timeout=10)
        self._reap()
        # Only a dockerd that did not exit cleanly leaves mounts (container shm, netns, its data-root bind).
        _unmount_under([self.short_dir, self.state_dir / "data"])
        # A killed dockerd leaves its pidfile, which would make the next start refuse if the pid is reused.
        (self.state_dir / "docker.pid").unlink(missing_ok=True)
        self.record_path.unlink(missing_ok=True)
        shutil.rmtree(self.short_dir, ignore_errors=True)


# ---------------------------------------------------------------- registry


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _registry_config(root: pathlib.Path, port: int, secret: str) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: info\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {json.dumps(str(root))}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        f"  secret: {secret}\n"
    )


class Registry(_RecordedService):
    """A docker-registry (distribution v2) on 127.0.0.1, plain http, no auth, storage in state_dir."""

    log_name = "registry.log"

    @property
    def config_path(self) -> pathlib.Path:
        return self.state_dir / "config.yml"

    @property
    def address(self) -> str:
        address = _read_record(self.record_path).get("address")
        if not address:
            raise HarnessError(f"the registry of {self.state_dir} was never started")
        return address

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _answers(self, address: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 30, port: int | None = None) -> Registry:
        """Starts on `port`, or on a free one; a name without a port (`127.0.0.1/repo`) means port 443."""
        if self.running():
            raise HarnessError(f"a registry already runs for {self.state_dir} (pid {self.pid})")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if port is not None:
            return self._start_on(port, timeout)
        # The free port may be taken between our probe and the registry's bind: try a few.
        for attempt in range(3):
            try:
                return self._start_on(_free_port(), timeout)
            except HarnessError:
                if attempt == 2:
                    raise
        return self

    def _start_on(self, port: int, timeout: float) -> Registry:
        address = f"127.0.0.1:{port}"
        self.config_path.write_text(_registry_config(self.state_dir / "data", port, os.urandom(16).hex()), encoding="utf-8")
        self._launch([REGISTRY_BIN, "serve", str(self.config_path)], {"address": address},
                     lambda: self._answers(address), timeout, "docker-registry")
        return self

    def stop(self) -> None:
        """Stops the registry; a no-op when nothing runs."""
        record = _read_record(self.record_path)
        proc = self._recorded_process(record)
        if proc is not None:
            _terminate([proc], timeout=10)
        self._reap()
        # The address stays readable after stop, for messages; only the pid is dropped.
        if record:
            _write_record(self.record_path, {"address": record.get("address")})


# ---------------------------------------------------------------- images


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    """An image in the daemon. size is what the daemon reports; payload_size the random bytes in it."""

    repo: str
    tag: str
    # The config digest on this 20.10 engine; containerd-store engines report a manifest digest (arvados/arvados#488).
    image_id: str
    created: str
    size: int
    payload_size: int = 0

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.tag}"


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/name:tag' -> ('host:5000/name', 'tag'); a ref without a tag means 'latest'."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def parse_created(created: str) -> datetime.datetime:
    """Docker's RFC 3339 time with nanoseconds, as an aware datetime (microsecond precision)."""
    text = created.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    return datetime.datetime.fromisoformat(text)


class _SeededBytes:
    """A file-like reader of `size` pseudo-random bytes fixed by `seed`, made chunk by chunk."""

    def __init__(self, size: int, seed: int) -> None:
        self._left = size
        self._random = random.Random(seed)

    def read(self, size: int = -1) -> bytes:
        count = self._left if size is None or size < 0 else min(size, self._left)
        self._left -= count
        return self._random.randbytes(count)


def payload_bytes(size: int, seed: int) -> bytes:
    """The payload a build with this size and seed puts in the image, for tests that compare content."""
    return _SeededBytes(size, seed).read()


def _default_seed(repo: str, tag: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{repo}:{tag}:{size}".encode()).digest()[:8], "big")


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = LAYER_MTIME
    return info


def write_rootfs(path: pathlib.Path, size: int, seed: int, files: Mapping[str, bytes] | None = None) -> pathlib.Path:
    """A deterministic rootfs tar: busybox as /bin/sh, /payload/random.bin of `size` bytes, extra files."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "payload"):
            tar.addfile(_tar_member(directory, tarfile.DIRTYPE, mode=0o755))
        busybox = pathlib.Path(BUSYBOX)
        with open(busybox, "rb") as source:
            tar.addfile(_tar_member("bin/busybox", size=busybox.stat().st_size, mode=0o755), source)
        link = _tar_member("bin/sh", tarfile.SYMTYPE, mode=0o777)
        link.linkname = "busybox"
        tar.addfile(link)
        if size:
            tar.addfile(_tar_member("payload/random.bin", size=size), _SeededBytes(size, seed))
        for name, content in sorted((files or {}).items()):
            tar.addfile(_tar_member(name.lstrip("/"), size=len(content)), io.BytesIO(content))
    return path


class ImageFactory:
    """Builds, saves, pushes and removes small images in one daemon, offline."""

    def __init__(self, daemon: DockerDaemon, work_dir: pathlib.Path) -> None:
        self.daemon = daemon
        self.work_dir = pathlib.Path(work_dir)
        self._client: docker.DockerClient | None = None
        self._last_created: datetime.datetime | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self.daemon.client()
        return self._client

    def build(
        self,
        repo: str,
        tag: str = "latest",
        size: int = 0,
        seed: int | None = None,
        distinct_second: bool = False,
        files: Mapping[str, bytes] | None = None,
    ) -> BuiltImage:
        """Imports a busybox rootfs with `size` seeded random bytes as repo:tag.

        The same repo, tag, size, seed and files give the same layer; the image id still differs
        between builds because `docker import` stamps the config with the current time.
        distinct_second=True first waits until at least one second has passed since this factory's
        previous build, for tests that order images by creation time.
        """
        seed = _default_seed(repo, tag, size) if seed is None else seed
        if distinct_second:
            self._wait_for_next_second()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            rootfs = write_rootfs(pathlib.Path(tmp) / "rootfs.tar", size, seed, files)
            self.client.api.import_image(src=str(rootfs), repository=repo, tag=tag, changes=['CMD ["/bin/sh"]'])
        attrs = self.client.api.inspect_image(f"{repo}:{tag}")
        built = BuiltImage(repo=repo, tag=tag, image_id=attrs["Id"], created=attrs["Created"], size=attrs["Size"], payload_size=size)
        self._last_created = parse_created(built.created)
        return built

    def _wait_for_next_second(self) -> None:
        if self._last_created is None:
            return
        target = self._last_created.timestamp() + 1.0
        while time.time() < target:
            time.sleep(min(0.05, max(target - time.time(), 0.001)))
        # The daemon stamps the time after receiving the tar; a margin guards against clock granularity.
        time.sleep(0.01)

    def save(self, ref: str, path: pathlib.Path) -> pathlib.Path:
        """`docker save` of one image, streamed to `path` (the classic docker-archive of this 20.10 engine)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for chunk in self.client.api.get_image(ref, chunk_size=CHUNK):
                out.write(chunk)
        return path

    def push(self, ref: str, registry: Registry) -> str:
        """Tags `ref` as <registry>/<repo>:<tag>, pushes it and returns that pushed ref."""
        repo, tag = split_ref(ref)
        target_repo = f"{registry.address}/{repo}"
        self.client.api.tag(ref, target_repo, tag)
        for event in self.client.api.push(target_repo, tag, stream=True, decode=True):
            if "error" in event:
                raise HarnessError(f"push of {target_repo}:{tag} failed: {event['error']}")
        return f"{target_repo}:{tag}"

    def pull(self, ref: str) -> str:
        """Pulls `ref` (from our registry: nothing else is reachable) and returns the image id."""
        repo, tag = split_ref(ref)
        self.client.api.pull(repo, tag)
        return self.client.api.inspect_image(ref)["Id"]

    def remove(self, ref: str) -> None:
        """Removes one tag (and the image once untagged); a no-op when it is already gone."""
        try:
            self.client.api.remove_image(ref, force=True)
        except docker.errors.ImageNotFound:
            pass


# ---------------------------------------------------------------- command line


def _services(state_dir: pathlib.Path) -> tuple[DockerDaemon, Registry]:
    return DockerDaemon(state_dir / "dockerd"), Registry(state_dir / "registry")


def _summary(daemon: DockerDaemon, registry: Registry) -> dict:
    return {
        "docker_host": daemon.docker_host,
        "docker_tls_host": daemon.tls_docker_host,
        "docker_cert_path": str(daemon.tls_files.client_dir),
        "registry": registry.address,
        "registry_url": registry.url,
        "dockerd_pid": daemon.pid,
        "registry_pid": registry.pid,
        "dockerd_log": str(daemon.log_path),
        "registry_log": str(registry.log_path),
    }


def up(state_dir: pathlib.Path) -> dict:
    """Starts dockerd and the registry, detached; when both already run, reports them as they are."""
    daemon, registry = _services(state_dir)
    summary_path = state_dir / "docker.json"
    if not (daemon.running() and registry.running()):
        down(state_dir)
        daemon.start()
        try:
            registry.start()
        except HarnessError:
            daemon.stop()
            raise
    summary = _summary(daemon, registry)
    _write_record(summary_path, summary)
    return summary


def down(state_dir: pathlib.Path) -> None:
    """Stops whatever of the two runs for state_dir."""
    daemon, registry = _services(state_dir)
    registry.stop()
    daemon.stop()
    (state_dir / "docker.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A private dockerd and registry for tests, the demo and benchmarks.")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--state-dir", required=True, type=pathlib.Path)
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    if args.action == "up":
        state_dir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(up(state_dir), indent=2))
    else:
        down(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
