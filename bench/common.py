"""What every benchmark of bench/ shares: its command line and how it publishes its results."""
from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import subprocess
import tempfile
import time
import typing as t


def bench_arguments(description: str, rounds: int) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes; each adds its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--collections-path", type=pathlib.Path, required=True, help="folder holding ansible_collections/")
    parser.add_argument("--json", type=pathlib.Path, help="also write the raw measurements here")
    parser.add_argument("--markdown", type=pathlib.Path, help="also write the report here")
    return parser


def publish(report: str, rounds: t.Any, args: argparse.Namespace) -> int:
    """Print the report, and write it and the raw measurements where asked."""
    print(report)
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2, default=str), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(report, encoding="utf-8")
    return 0


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a command to the end; its wall time and output. A failing command ends the benchmark with its output."""
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return wall, result.stdout


@contextlib.contextmanager
def daemon_and_emulator(prefix: str) -> t.Iterator[tuple[pathlib.Path, t.Any, t.Any, t.Any]]:
    """A scratch folder holding a private dockerd, an image factory on it and an emulator, all stopped afterwards.

    The caller has put tests/ on sys.path (for the harness).
    """
    from harness.docker_env import DockerDaemon, ImageFactory  # pylint: disable=import-outside-toplevel
    from harness.emulator import Emulator  # pylint: disable=import-outside-toplevel
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        work = pathlib.Path(scratch)
        daemon = DockerDaemon(work / "dockerd").start()
        emulator = None
        try:
            factory = ImageFactory(daemon, work / "images")
            emulator = Emulator(work / "emulator").start()
            yield work, daemon, factory, emulator
        finally:
            if emulator is not None:
                emulator.stop()
            daemon.stop()
