"""Wall time and peak memory of writing one image-sized file to Keep: our stream writer against arv-put.

    .venv/bin/python bench/keep_writer.py [--size-mb 400] [--blocks-in-flight 2 [3 ...]] [--rounds 3] [--json FILE]

Each upload runs in a process of its own against a fresh emulator (so no run finds blocks another run
stored), reading the same file from the page cache. Both end with a saved collection, and their portable
data hashes must agree. Peak RSS is the child's `ru_maxrss` as `wait4` reports it. The emulator shares
the machine's CPUs with the client, so the times compare the two clients here, not a real cluster.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
UPLOAD_MODULE = REPO_ROOT / "plugins" / "module_utils" / "_upload.py"
TOOLS_BIN = pathlib.Path(sys.executable).parent
MIB = 1 << 20

# What a module process does: both SDKs loaded, the file streamed through the writer, the collection saved.
OUR_WRITER = r"""
import importlib.util, json, resource, sys
import arvados
import docker  # noqa: F401

spec = importlib.util.spec_from_file_location("upload", sys.argv[1])
upload = importlib.util.module_from_spec(spec)
spec.loader.exec_module(upload)
path, file_name, blocks_in_flight = sys.argv[2], sys.argv[3], int(sys.argv[4])
api = arvados.api("v1")
start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(path, "rb") as stream:
    manifest_text = upload.write_stream_to_keep(api.keep, stream, file_name, blocks_in_flight=blocks_in_flight)
collection = api.collections().create(body={"name": "bench " + file_name, "manifest_text": manifest_text}).execute()
print(json.dumps({"start_kib": start_kib, "portable_data_hash": collection["portable_data_hash"]}))
"""


def write_random_file(path: pathlib.Path, size: int) -> str:
    """Fill `path` with `size` random bytes; return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as stream:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 8 * MIB))
            digest.update(chunk)
            stream.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def start_emulator(data_dir: pathlib.Path) -> t.Any:
    """A fresh emulator from the test harness (tests/harness/emulator.py)."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from harness.emulator import Emulator  # pylint: disable=import-outside-toplevel
    return Emulator(data_dir).start()


def client_environment(emulator: t.Any, home: pathlib.Path) -> dict[str, str]:
    """The runner's environment with only this emulator's credentials and a private HOME."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ARVADOS_")}
    env.update(emulator.env("alice"))
    env["HOME"] = str(home)
    return env


def run_measured(command: list[str], env: dict[str, str], workdir: pathlib.Path) -> dict[str, t.Any]:
    """Run `command`; return its exit code, output, wall seconds and peak RSS (KiB) from wait4."""
    stdout_path, stderr_path = workdir / "stdout", workdir / "stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=stdout, stderr=stderr)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall_seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": process.returncode,
        "wall_seconds": round(wall_seconds, 2),
        "peak_rss_kib": usage.ru_maxrss,
        "stdout": stdout_path.read_text(errors="replace"),
        "stderr": stderr_path.read_text(errors="replace")[-2000:],
    }


def our_writer_command(source: pathlib.Path, file_name: str, blocks_in_flight: int) -> list[str]:
    return [sys.executable, "-c", OUR_WRITER, str(UPLOAD_MODULE), str(source), file_name, str(blocks_in_flight)]


def arv_put_command(source: pathlib.Path, file_name: str) -> list[str]:
    return [str(TOOLS_BIN / "arv-put"), "--no-resume", "--no-cache", "--no-progress", "--portable-data-hash",
            "--filename", file_name, str(source)]


def measure_on_fresh_emulator(name: str, command: list[str], workdir: pathlib.Path) -> dict[str, t.Any]:
    """One upload against an emulator that starts empty; its result with the collection's PDH."""
    workdir.mkdir(parents=True)
    (workdir / "home").mkdir()
    emulator = start_emulator(workdir / "emulator")
    # Earlier runs' blocks are still being written back to disk; let that finish outside the measurement.
    os.sync()
    try:
        result = run_measured(command, client_environment(emulator, workdir / "home"), workdir)
    finally:
        emulator.stop()
    if result["exit_code"] != 0:
        raise SystemExit(f"{name} failed with exit {result['exit_code']}:\n{result['stderr']}")
    result["name"] = name
    result["portable_data_hash"] = portable_data_hash_printed(result["stdout"])
    return result


def portable_data_hash_printed(stdout: str) -> str:
    """arv-put --portable-data-hash prints the PDH; our writer prints JSON that holds it."""
    last_line = stdout.strip().splitlines()[-1]
    if last_line.startswith("{"):
        return json.loads(last_line)["portable_data_hash"]
    return last_line


def summarize(runs: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Median and spread of one contestant's wall times, and its highest peak RSS."""
    walls = [run["wall_seconds"] for run in runs]
    return {
        "name": runs[0]["name"],
        "wall_seconds_median": statistics.median(walls),
        "wall_seconds_min": min(walls),
        "wall_seconds_max": max(walls),
        "peak_rss_kib": max(run["peak_rss_kib"] for run in runs),
        "portable_data_hash": runs[0]["portable_data_hash"],
    }


def report_line(summary: dict[str, t.Any], size: int) -> str:
    megabytes_per_second = size / 1e6 / summary["wall_seconds_median"]
    return (f"{summary['name']:<36} wall {summary['wall_seconds_median']:5.2f} s median "
            f"({summary['wall_seconds_min']:.2f}-{summary['wall_seconds_max']:.2f}), {megabytes_per_second:5.1f} MB/s; "
            f"peak RSS {summary['peak_rss_kib'] / 1024:5.1f} MiB ({summary['peak_rss_kib'] * 1024 / 1e6:5.1f} MB)")


def parse_arguments(argv: t.Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=400, help="file size in decimal megabytes (default 400)")
    parser.add_argument("--blocks-in-flight", type=int, nargs="+", default=[2], help="our writer's settings to measure (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="measure every contestant this many times, interleaved (default 3)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here as JSON")
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    size = arguments.size_mb * 1000 * 1000
    with tempfile.TemporaryDirectory(prefix="bench-keep-writer-") as scratch:
        scratch_dir = pathlib.Path(scratch)
        source = scratch_dir / "image.tar"
        file_name = f"sha256:{write_random_file(source, size)}.tar"
        contestants = [(f"arvados.cluster writer (in flight {count})", our_writer_command(source, file_name, count))
                       for count in arguments.blocks_in_flight]
        contestants.append(("arv-put", arv_put_command(source, file_name)))
        runs = [measure_on_fresh_emulator(name, command, scratch_dir / f"round-{round_number}-{index}")
                for round_number in range(arguments.rounds)
                for index, (name, command) in enumerate(contestants)]
    summaries = [summarize([run for run in runs if run["name"] == name]) for name, _command in contestants]
    print(f"{arguments.size_mb} MB file, {arguments.rounds} rounds, {os.cpu_count()} CPUs, emulator on the same machine")
    for summary in summaries:
        print(report_line(summary, size))
    same_hash = len({run["portable_data_hash"] for run in runs}) == 1
    print(f"portable data hashes {'agree' if same_hash else 'DIFFER'}: {runs[-1]['portable_data_hash']}")
    if arguments.json:
        arguments.json.write_text(json.dumps({"size_bytes": size, "rounds": arguments.rounds, "results": summaries}, indent=2) + "\n")
    return 0 if same_hash else 1


if __name__ == "__main__":
    sys.exit(main())
