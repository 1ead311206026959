"""The arvados_docker_image lookup against list_images_in_arv per term, in one run, on one emulator.

    .venv/bin/python bench/lookup_terms.py --collections-path build/stage [--terms 50] [--rounds 3] [--markdown FILE]

A fresh emulator holds, for each of N names `bench/imgNN:1`, two images (the newer build tagged first, an older
one re-tagged later), each with its hash and repo+tag links. Measured per round, each starting from an empty
client cache (private HOME): the lookup resolving all N names in one call, the lookup called once per name, and
`arvados.commands.keepdocker.list_images_in_arv` once per name on one client (its first entry is the choice).
API requests come from the emulator's request log and include the client's discovery and config reads; wall
time is the median over rounds. The lookup runs in-process, through ansible-core's plugin loader, so neither
side pays for starting ansible.
"""
from __future__ import annotations

import os
import pathlib
import statistics
import sys
import tempfile
import time
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position
from common import bench_arguments, publish  # noqa: E402  pylint: disable=wrong-import-position

LOOKUP = "arvados.cluster.arvados_docker_image"
BLOCK = b"bench image\n"


def build_images(emulator: Emulator, names: list[str]) -> None:
    """Two images per name, both in alice's home project; the newer build wins although tagged first."""
    api = emulator.api("alice")
    locator = api.keep.put(BLOCK)
    for index, name in enumerate(names):
        for age, year in (("new", 2025), ("old", 2020)):
            image_hex = f"{index:032x}{year:032x}"
            manifest = f". {locator} 0:{len(BLOCK)}:sha256\\072{image_hex}.tar\n"
            collection = api.collections().create(body={"collection": {
                "manifest_text": manifest, "name": f"bench image {index} {age}"}}, ensure_unique_name=True).execute()
            properties = {"image_timestamp": f"{year}-01-01T00:00:{index % 60:02d}Z"}
            for link_class, link_name in (("docker_image_hash", f"sha256:{image_hex}"), ("docker_image_repo+tag", name)):
                api.links().create(body={"link": {"link_class": link_class, "name": link_name, "head_uuid": collection["uuid"],
                                                  "properties": properties}}).execute()


def fresh_client_cache(scratch: pathlib.Path, label: str) -> None:
    """Point the Arvados SDK's caches (the discovery document among them) at an empty folder."""
    home = scratch / f"home-{label}-{time.monotonic_ns()}"
    home.mkdir(parents=True)
    os.environ["HOME"] = str(home)
    os.environ["XDG_CACHE_HOME"] = str(home / ".cache")


def api_requests(emulator: Emulator) -> int:
    return sum(emulator.request_log()["counts"]["api"].values())


def load_lookup(collections_path: pathlib.Path) -> t.Any:
    from ansible.plugins.loader import init_plugin_loader, lookup_loader  # pylint: disable=import-outside-toplevel
    init_plugin_loader([str(collections_path)])
    return lookup_loader.get(LOOKUP)


def measure(emulator: Emulator, scratch: pathlib.Path, label: str, run: t.Callable[[], list[str]]) -> dict[str, t.Any]:
    fresh_client_cache(scratch, label)
    emulator.reset_request_log()
    started = time.monotonic()
    answers = run()
    wall = time.monotonic() - started
    return {"wall_s": wall, "api_requests": api_requests(emulator), "answers": answers}


def run_round(emulator: Emulator, scratch: pathlib.Path, lookup: t.Any, names: list[str]) -> dict[str, dict[str, t.Any]]:
    connection = {"api_host": emulator.api_host, "api_token": emulator.token("alice"), "api_insecure": True}

    def lookup_batched() -> list[str]:
        return lookup.run(names, {}, result="uuid", **connection)

    def lookup_per_term() -> list[str]:
        return [lookup.run([name], {}, result="uuid", **connection)[0] for name in names]

    def upstream_per_term() -> list[str]:
        from arvados.commands.keepdocker import list_images_in_arv  # pylint: disable=import-outside-toplevel
        api = emulator.api("alice")
        return [list_images_in_arv(api, 2, image_name=name.rpartition(":")[0], image_tag=name.rpartition(":")[2])[0][0]
                for name in names]

    return {
        "lookup, one call": measure(emulator, scratch, "batched", lookup_batched),
        "lookup, one call per term": measure(emulator, scratch, "per-term", lookup_per_term),
        "list_images_in_arv per term": measure(emulator, scratch, "upstream", upstream_per_term),
    }


def markdown(rounds: list[dict[str, dict[str, t.Any]]], terms: int, command: str) -> str:
    tools = list(rounds[0])
    upstream = rounds[0]["list_images_in_arv per term"]["answers"]
    lines = [
        "# Benchmark: the lookup against list_images_in_arv", "",
        f"{terms} terms `bench/imgNN:1`, each held by two images (the newer build tagged first, an older one re-tagged "
        f"later), on a fresh emulator. Each measurement starts with an empty client cache; API requests include the "
        f"client's discovery and config reads. Wall time: median of {len(rounds)} round(s), same run. Command: `{command}`.", "",
        f"| for {terms} terms | API requests | wall time (s) | same answers as list_images_in_arv |", "| --- | --- | --- | --- |",
    ]
    for tool in tools:
        requests = rounds[0][tool]["api_requests"]
        wall = statistics.median(measured[tool]["wall_s"] for measured in rounds)
        agree = sum(ours == theirs for ours, theirs in zip(rounds[0][tool]["answers"], upstream))
        lines.append(f"| {tool} | {requests} | {wall:.2f} | {agree}/{terms} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = bench_arguments(__doc__, rounds=3)
    parser.add_argument("--terms", type=int, default=50)
    args = parser.parse_args()
    names = [f"bench/img{index:02d}:1" for index in range(args.terms)]
    lookup = load_lookup(args.collections_path.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as scratch_name:
        scratch = pathlib.Path(scratch_name)
        emulator = Emulator(scratch / "emulator").start()
        try:
            build_images(emulator, names)
            rounds = [run_round(emulator, scratch, lookup, names) for _round in range(args.rounds)]
        finally:
            emulator.stop()
    report = markdown(rounds, args.terms, f"make bench-lookup BENCH_TERMS={args.terms} BENCH_ROUNDS={args.rounds}")
    return publish(report, rounds, args)


if __name__ == "__main__":
    sys.exit(main())
