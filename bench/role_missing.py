"""The docker_images role against a shell loop of arv-keepdocker, with every image missing from the cluster.

    .venv/bin/python bench/role_missing.py --collections-path DIR [--images 10] [--size-mb 10] [--rounds 3] [--json F] [--markdown F]

One private dockerd and one emulator serve both tools in the same run. Each round builds fresh images (random
payloads of --size-mb), half for each tool, so that both upload every image they are given; then it times, in
alternating order, `ansible-playbook` of a play applying the role to its images, and `arv-keepdocker repo tag` in a
bash loop over the others (whole-command wall time each), and counts each one's API requests and Keep PUT bytes.
"""
from __future__ import annotations

import json
import pathlib
import shlex
import statistics
import sys
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position
from common import bench_arguments, daemon_and_emulator, publish, timed  # noqa: E402  pylint: disable=wrong-import-position
from role_vs_keepdocker import BIN, Bench, api_requests, recap_changed  # noqa: E402  pylint: disable=wrong-import-position

TARGET_WALL_RATIO = 0.4
TARGET_REQUEST_RATIO = 1.2


def keep_put_bytes(emulator: Emulator) -> int:
    return sum(int(entry.get("request_bytes") or 0) for entry in emulator.request_log()["entries"]
               if entry["service"] == "keep" and entry["method"] == "PUT" and entry["status"] == 200)


class MissingBench(Bench):
    """The role and the loop, each given images the cluster lacks."""

    def use_images(self, role_refs: list[str], loop_refs: list[str], docker_host: str) -> None:
        images = [{"name": ref} for ref in role_refs]
        self.role_command[-1] = json.dumps({"bench_images": images, "bench_docker_host": docker_host})
        loop = " ".join(shlex.quote(f"{ref.rsplit(':', 1)[0]} {ref.rsplit(':', 1)[1]}") for ref in loop_refs)
        self.loop_command[-1] = f"set -e; for image in {loop}; do {shlex.quote(str(BIN / 'arv-keepdocker'))} $image; done"
        self.loop_refs = loop_refs

    def role(self) -> dict[str, t.Any]:
        self.emulator.reset_request_log()
        wall, output = timed(self.role_command, self.role_env)
        if recap_changed(output) != 1:
            raise SystemExit(f"the role should have stored the images:\n{output[-3000:]}")
        return {"wall_s": wall, "api_requests": api_requests(self.emulator), "put_bytes": keep_put_bytes(self.emulator)}

    def keepdocker_loop(self) -> dict[str, t.Any]:
        self.emulator.reset_request_log()
        wall, output = timed(self.loop_command, self.env)
        uuids = [line for line in output.split() if "-4zz18-" in line]
        if len(uuids) != len(self.loop_refs):
            raise SystemExit(f"arv-keepdocker printed {len(uuids)} collections for {len(self.loop_refs)} images:\n{output[-3000:]}")
        return {"wall_s": wall, "api_requests": api_requests(self.emulator), "put_bytes": keep_put_bytes(self.emulator)}


def markdown(rounds: list[dict[str, t.Any]], image_count: int, size_mb: int, command: str) -> str:
    def med(tool: str, key: str) -> float:
        return statistics.median(float(measured[tool][key]) for measured in rounds)

    wall_ratio = statistics.median(measured["role"]["wall_s"] / measured["keepdocker"]["wall_s"] for measured in rounds)
    request_ratio = med("role", "api_requests") / med("keepdocker", "api_requests")
    per_round = ", ".join(f"{measured['role']['wall_s']:.2f} s / {measured['keepdocker']['wall_s']:.2f} s" for measured in rounds)

    def verdict(ratio: float, target: float) -> str:
        return f"{ratio:.2f}x ({'meets' if ratio <= target else 'MISSES'} the target of {target}x)"

    return "\n".join([
        "# Benchmark: the docker_images role against a shell loop of arv-keepdocker, images missing", "",
        f"{image_count} images of {size_mb} MB for each tool, none in the cluster before (fresh images every round), on one "
        f"emulator and one private dockerd. Median of {len(rounds)} round(s), the two tools alternating. "
        f"Command: `{command}`.", "",
        "| measure | arv-keepdocker loop | role | role / loop |", "| --- | --- | --- | --- |",
        f"| wall time (s) | {med('keepdocker', 'wall_s'):.2f} | {med('role', 'wall_s'):.2f} | "
        f"{med('role', 'wall_s') / med('keepdocker', 'wall_s'):.2f} |",
        f"| API requests | {med('keepdocker', 'api_requests'):.0f} | {med('role', 'api_requests'):.0f} | {request_ratio:.2f} |",
        f"| Keep PUT bytes | {med('keepdocker', 'put_bytes'):.0f} | {med('role', 'put_bytes'):.0f} | "
        f"{med('role', 'put_bytes') / med('keepdocker', 'put_bytes'):.2f} |",
        "",
        f"Wall time, the median of the rounds' ratios: {verdict(wall_ratio, TARGET_WALL_RATIO)}. "
        f"API requests: {verdict(request_ratio, TARGET_REQUEST_RATIO)}. Per round, role against loop: {per_round}.",
        "Wall times are whole commands: `ansible-playbook` with its start, and the whole bash loop.", "",
    ])


def main() -> int:
    parser = bench_arguments(__doc__, rounds=3)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--size-mb", type=int, default=10)
    args = parser.parse_args()
    with daemon_and_emulator("bench-role-missing-") as (work, daemon, factory, emulator):
        bench = MissingBench(work / "run", emulator, daemon, [], args.collections_path)
        rounds = []
        for index in range(args.rounds):
            refs = [factory.build(f"bench/missing-{index}-{tool}-{number:02d}", "1", size=args.size_mb * 1_000_000).ref
                    for tool in ("role", "loop") for number in range(args.images)]
            bench.use_images(refs[:args.images], refs[args.images:], daemon.docker_host)
            order = ("role", "keepdocker") if index % 2 == 0 else ("keepdocker", "role")
            rounds.append({tool: bench.role() if tool == "role" else bench.keepdocker_loop() for tool in order})
    command = f"make bench-role-missing BENCH_MISSING_IMAGES={args.images} BENCH_MISSING_MB={args.size_mb} BENCH_MISSING_ROUNDS={args.rounds}"
    return publish(markdown(rounds, args.images, args.size_mb, command), rounds, args)


if __name__ == "__main__":
    sys.exit(main())
