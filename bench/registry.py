"""`source: registry` against the daemon's route and skopeo's, in one run, on one registry, dockerd and emulator build.

    .venv/bin/python bench/registry.py [--size-mb 400] [--rss-sizes-mb 100] [--rounds 1] [--json FILE] [--markdown FILE]

The image (one random layer, gzip as `docker push` compresses it) is pushed to Debian's docker-registry on plain HTTP
on 127.0.0.1, then removed from the private dockerd. Each route runs on a fresh emulator, whole commands timed:
- ansible-playbook with `source: registry` (the module's code in the controller's worker, the common local case);
  its no-op re-run (`pull: missing`) and a `pull: always` re-run, with the registry's requests counted from its log;
- `docker pull` then `arv-keepdocker` (the usual route; the image is removed from the daemon first);
- `skopeo copy docker://... docker-archive:...` then `arv-put` of the archive.
Peak RSS is sampled every 20 ms (psutil) for the process running the module's code (the ansible worker), and the
largest size the route's HOME and TMPDIR reach. `--rss-sizes-mb` adds module-only upload runs at other sizes, to
show whether its memory grows with the image.
"""
from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import tempfile
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from harness.docker_env import DockerDaemon, ImageFactory, Registry  # noqa: E402  pylint: disable=wrong-import-position
from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position
from common import bench_arguments, publish  # noqa: E402  pylint: disable=wrong-import-position
from module_vs_keepdocker import (  # noqa: E402  pylint: disable=wrong-import-position
    BIN,
    MB,
    is_ansible_worker,
    is_keepdocker_process,
    request_counts,
    run_sampled,
)

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: ensure the image
      arvados.cluster.arvados_docker_image:
        name: "{{ image }}"
        source: registry
        pull: "{{ pull }}"
"""
INVENTORY = "localhost ansible_connection=local ansible_python_interpreter={python}\n"
ROUTES = {"module": "ansible-playbook, source: registry", "docker": "docker pull + arv-keepdocker",
          "skopeo": "skopeo copy + arv-put"}


def registry_counts(registry: Registry, start: int) -> dict[str, int]:
    """Requests the registry logged since line `start`: blob GETs and manifest requests (GET or HEAD)."""
    lines = registry.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[start:]
    done = [line for line in lines if "response completed" in line]
    return {"blob_gets": sum(1 for line in done if "method=GET" in line and "/blobs/" in line),
            "manifest_gets": sum(1 for line in done if "method=GET" in line and "/manifests/" in line),
            "manifest_heads": sum(1 for line in done if "method=HEAD" in line and "/manifests/" in line)}


def log_lines(registry: Registry) -> int:
    return len(registry.log_path.read_text(encoding="utf-8", errors="replace").splitlines())


class Route:
    """One route measured on a fresh emulator, with a private HOME and TMPDIR."""

    def __init__(self, work: pathlib.Path, daemon: DockerDaemon, registry: Registry, pushed: str, name: str) -> None:
        self.work = work / name
        self.daemon = daemon
        self.registry = registry
        self.pushed = pushed
        self.emulator = Emulator(self.work / "emulator").start()
        home, tmp = self.work / "home", self.work / "tmp"
        for folder in (home, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.folders = [home, tmp]
        self.env = dict(os.environ, **self.emulator.env(), **daemon.env(), HOME=str(home), TMPDIR=str(tmp),
                        PATH=f"/usr/bin:{BIN}:{os.environ.get('PATH', '')}")

    def close(self) -> None:
        self.emulator.stop()

    def measured(self, commands: list[list[str]], worker: t.Callable[[t.Any], bool]) -> dict[str, t.Any]:
        """The commands one after another: summed wall time, the largest peaks, registry and emulator requests."""
        self.emulator.reset_request_log()
        start = log_lines(self.registry)
        results = [run_sampled(command, self.env, worker, self.folders) for command in commands]
        total = {"wall_s": sum(result["wall_s"] for result in results),
                 "peak_worker_rss_mb": max(result["peak_worker_rss_mb"] for result in results),
                 "peak_temp_mb": max(result["peak_temp_mb"] for result in results),
                 "stdout": results[-1]["stdout"]}
        total.update(request_counts(self.emulator))
        total.update(registry_counts(self.registry, start))
        return total

    def module(self, collections_path: pathlib.Path, phases: t.Sequence[tuple[str, str]]) -> dict[str, dict[str, t.Any]]:
        (self.work / "bench.yml").write_text(PLAYBOOK, encoding="utf-8")
        (self.work / "inventory").write_text(INVENTORY.format(python=sys.executable), encoding="utf-8")
        self.env.update(ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_LOCAL_TEMP=str(self.folders[1]),
                        ANSIBLE_REMOTE_TMP=str(self.folders[1]))
        results = {}
        for phase, pull in phases:
            command = [str(BIN / "ansible-playbook"), "-i", str(self.work / "inventory"), str(self.work / "bench.yml"),
                       "-e", json.dumps({"image": self.pushed, "pull": pull})]
            result = self.measured([command], is_ansible_worker)
            result["changed"] = "changed=1" in result.pop("stdout")
            results[phase] = result
        return results

    def docker(self) -> dict[str, dict[str, t.Any]]:
        self.daemon.client().images.remove(self.pushed, force=True)
        repo, tag = self.pushed.rsplit(":", 1)
        pull = ["/usr/bin/docker", "-H", self.daemon.docker_host, "pull", "-q", self.pushed]
        result = self.measured([pull, [str(BIN / "arv-keepdocker"), repo, tag]], is_keepdocker_process)
        result.pop("stdout")
        return {"upload": result}

    def skopeo(self) -> dict[str, dict[str, t.Any]]:
        archive = self.folders[1] / "image.tar"
        copy = ["/usr/bin/skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{self.pushed}", f"docker-archive:{archive}"]
        result = self.measured([copy, [str(BIN / "arv-put"), "--no-resume", "--no-cache", str(archive)]], lambda _process: False)
        result.pop("stdout")
        archive.unlink()
        return {"upload": result}


def run_round(work: pathlib.Path, daemon: DockerDaemon, registry: Registry, pushed: str, collections_path: pathlib.Path) -> dict[str, t.Any]:
    measured = {}
    for name in ROUTES:
        route = Route(work, daemon, registry, pushed, name)
        try:
            if name == "module":
                measured[name] = route.module(collections_path, (("upload", "missing"), ("no-op", "missing"), ("no-op, pull: always", "always")))
            else:
                measured[name] = getattr(route, name)()
        finally:
            route.close()
    return measured


def median(rounds: list[dict[str, t.Any]], route: str, phase: str, key: str) -> float:
    return statistics.median(float(measured[route][phase][key]) for measured in rounds)


def markdown(rounds: list[dict[str, t.Any]], size_mb: int, rss: dict[int, float], command: str) -> str:
    ours = median(rounds, "module", "upload", "wall_s")
    lines = [
        "# Benchmark: source: registry against the daemon's route and skopeo's", "",
        f"Image: {size_mb} MB of random payload in one gzip layer, pushed to Debian's docker-registry on plain HTTP on "
        f"127.0.0.1, then removed from the private dockerd (vfs). Median of {len(rounds)} round(s); each route runs on a fresh "
        f"emulator. Whole-command wall times. Command: `{command}`.", "",
        "| route | wall time (s) | ours / this route | peak RSS of the process running the upload code (MB) | "
        "largest temporary files (MB) | Keep PUTs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for route, label in ROUTES.items():
        wall = median(rounds, route, "upload", "wall_s")
        worker = median(rounds, route, "upload", "peak_worker_rss_mb")
        lines.append(f"| {label} | {wall:.2f} | {ours / wall:.2f} | {worker:.0f} | "
                     f"{median(rounds, route, 'upload', 'peak_temp_mb'):.0f} | {median(rounds, route, 'upload', 'keep_puts'):.0f} |")
    lines += ["", "The skopeo route's RSS column is not sampled (its processes are skopeo and arv-put); its temporary file (in TMPDIR) is the "
              "archive, the whole image.", "", "Re-runs of the module (nothing to do):", "",
              "| re-run | wall time (s) | changed | blob GETs | manifest GETs | manifest HEADs | API requests |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for phase in ("no-op", "no-op, pull: always"):
        changed = {measured["module"][phase]["changed"] for measured in rounds}
        lines.append(f"| {phase} | {median(rounds, 'module', phase, 'wall_s'):.2f} | {'yes' if True in changed else 'no'} | "
                     + " | ".join(f"{median(rounds, 'module', phase, key):.0f}"
                                  for key in ("blob_gets", "manifest_gets", "manifest_heads", "api_requests")) + " |")
    if rss:
        lines += ["", "Peak RSS of the module's process (the ansible worker) by image size, upload from the registry:", "",
                  "| image (MB) | peak RSS (MB) |", "| --- | --- |"]
        lines += [f"| {size} | {peak:.0f} |" for size, peak in sorted(rss.items())]
    return "\n".join(lines + [""])


def module_rss(work: pathlib.Path, daemon: DockerDaemon, registry: Registry, factory: ImageFactory, size_mb: int,
               collections_path: pathlib.Path) -> float:
    built = factory.build(f"bench/registry-{size_mb}", "1", size=size_mb * MB)
    pushed = factory.push(built.ref, registry)
    route = Route(work, daemon, registry, pushed, f"rss-{size_mb}")
    try:
        return float(route.module(collections_path, (("upload", "missing"),))["upload"]["peak_worker_rss_mb"])
    finally:
        route.close()
        daemon.client().images.remove(built.ref, force=True)
        daemon.client().images.remove(pushed, force=True)


def main() -> int:
    parser = bench_arguments(__doc__, rounds=1)
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--rss-sizes-mb", default="", help="comma-separated sizes for module-only RSS runs, e.g. 100,1000")
    args = parser.parse_args()
    rss_sizes = [int(size) for size in args.rss_sizes_mb.split(",") if size]
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as scratch:
        work = pathlib.Path(scratch)
        daemon = DockerDaemon(work / "dockerd").start()
        registry = Registry(work / "registry").start()
        try:
            factory = ImageFactory(daemon, work / "images")
            built = factory.build("bench/registry", "1", size=args.size_mb * MB)
            pushed = factory.push(built.ref, registry)
            daemon.client().images.remove(built.ref, force=True)
            rounds = [run_round(work / f"round-{index}", daemon, registry, pushed, args.collections_path) for index in range(args.rounds)]
            rss = {size: module_rss(work, daemon, registry, factory, size, args.collections_path) for size in rss_sizes}
            rss[args.size_mb] = median(rounds, "module", "upload", "peak_worker_rss_mb")
        finally:
            registry.stop()
            daemon.stop()
    command = f"make bench-registry BENCH_SIZE_MB={args.size_mb} BENCH_REGISTRY_ROUNDS={args.rounds} BENCH_RSS_SIZES_MB={args.rss_sizes_mb}"
    return publish(markdown(rounds, args.size_mb, rss, command), rounds, args)


if __name__ == "__main__":
    sys.exit(main())
