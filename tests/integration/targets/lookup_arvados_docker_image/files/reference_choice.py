# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""An independent reading of how the Arvados API server picks a Docker image (DESIGN section 1), to check the lookup.

    python reference_choice.py CONTEXT_FILE USER TERMS_FILE [--actual FILE] [--upstream TERM ...]

Reads every image link, migration link and collection USER can read, ranks each term's candidates from scratch,
and compares them with the lookup's `result=all` answers in the --actual file (from `on_missing=skip`). Prints JSON:
{"compared", "mismatches", "upstream_first"}; upstream_first is list_images_in_arv's first collection
for each --upstream term (split at its last `:`, as arv-keepdocker does).

It shares no code with the collection: only the term grammar the lookup documents is repeated here.
"""
from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
import typing as t
import urllib.request

import arvados
import arvados.util
from arvados.commands.keepdocker import list_images_in_arv

IMAGE_FILE = {"v1": re.compile(r"[0-9A-Fa-f]{64}\.tar"), "v2": re.compile(r"sha256:[0-9A-Fa-f]{64}\.tar")}
ID_TERM = re.compile(r"sha256:[0-9a-f]{4,64}|[0-9a-f]{12,64}")
PDH_TERM = re.compile(r"([0-9a-fA-F]{32}(?:\+[0-9]+)?)(?:\+[A-Z][A-Za-z0-9@_-]*)*")
ID_LINK_NAME = re.compile(r"(?:sha256:)?[0-9a-f]+")


def seconds(text: str) -> int:
    """Whole seconds since the epoch of an Arvados or Docker UTC time, as Ruby's to_i gives them."""
    match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", text)
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    days = _days_from_civil(year, month, day)
    return ((days * 24 + hour) * 60 + minute) * 60 + second


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def file_names(manifest_text: str) -> list[str]:
    names = []
    for line in manifest_text.splitlines():
        for token in line.split()[1:]:
            parts = token.split(":", 2)
            if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                names.append(parts[2].replace("\\072", ":"))
    return names


def like(pattern: str, text: str) -> bool:
    regex = "".join(".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


class View:
    """What one token can read."""

    def __init__(self, api: t.Any, formats: list[str], system_user_uuid: str) -> None:
        def every(resource: t.Any, filters: list[t.Any]) -> list[dict[str, t.Any]]:
            return list(arvados.util.keyset_list_all(resource, filters=filters))
        links = every(api.links().list, [["link_class", "in", ["docker_image_hash", "docker_image_repo+tag"]]])
        self.repo_tag_links = [link for link in links if link["link_class"] == "docker_image_repo+tag"]
        self.hash_links = [link for link in links if link["link_class"] == "docker_image_hash"]
        self.migrations = every(api.links().list, [["link_class", "=", "docker_image_migration"]])
        self.collections = {c["uuid"]: c for c in every(api.collections().list, [])}
        self.patterns = [IMAGE_FILE[name] for name in formats]
        self.system_user_uuid = system_user_uuid

    def supported(self, collection: dict[str, t.Any]) -> bool:
        names = file_names(collection["manifest_text"])
        return len(names) == 1 and any(p.fullmatch(names[0].rsplit("/", 1)[-1]) for p in self.patterns)

    def runnable(self, collection: dict[str, t.Any]) -> dict[str, t.Any] | None:
        """The collection a container would run: itself, or where the system user's newest migration link leads."""
        if self.supported(collection):
            return collection
        followed = sorted((link for link in self.migrations if link["owner_uuid"] == self.system_user_uuid
                           and link["tail_uuid"] == collection["portable_data_hash"]), key=lambda link: link["created_at"])
        if not followed:
            return None
        targets = [c for c in self.collections.values() if c["portable_data_hash"] == followed[-1]["head_uuid"]]
        return targets[0] if targets and self.supported(targets[0]) else None

    def ranked(self, matching: list[dict[str, t.Any]]) -> list[str]:
        """Collections keyed by their oldest matching link; image timestamp (present first, newest first), then link
        creation, in whole seconds; ties by collection uuid. Unsupported formats dropped or migrated."""
        oldest: dict[str, dict[str, t.Any]] = {}
        for link in sorted(matching, key=lambda link: link["created_at"]):
            oldest.setdefault(link["head_uuid"], link)

        def key(uuid: str) -> tuple[int, int, int, str]:
            link = oldest[uuid]
            stamp = (link.get("properties") or {}).get("image_timestamp")
            placed = (0, -seconds(stamp)) if stamp else (1, 0)
            return placed + (-seconds(link["created_at"]), uuid)
        result = []
        for uuid in sorted(oldest, key=key):
            runnable = self.runnable(self.collections[uuid])
            if runnable is not None:
                result.append(runnable["uuid"])
        return result

    def expected(self, term: str) -> dict[str, t.Any] | None:
        if ID_TERM.fullmatch(term):
            hex_prefix = term.split(":", 1)[1] if term.startswith("sha256:") else term
            matching = [link for link in self.hash_links if link["head_uuid"] in self.collections
                        and ID_LINK_NAME.fullmatch(link["name"]) and link["name"].split(":")[-1].startswith(hex_prefix)]
            return _found("uuid", self.ranked(matching))
        pdh = PDH_TERM.fullmatch(term)
        if pdh:
            holders = sorted((c for c in self.collections.values() if c["portable_data_hash"] == pdh.group(1)), key=lambda c: c["uuid"])
            runnable = self.runnable(holders[0]) if holders else None
            return _found("portable_data_hash", [runnable["portable_data_hash"]] if runnable else [])
        head, colon, tag = term.partition(":")
        name = f"{head}:{tag}" if colon else f"{head}:latest"
        matching = [link for link in self.repo_tag_links if link["name"] == name and link["head_uuid"] in self.collections]
        if not matching:
            matching = [link for link in self.hash_links if link["head_uuid"] in self.collections and like(head + "%", link["name"])]
        return _found("uuid", self.ranked(matching))


def _found(key: str, values: list[str]) -> dict[str, t.Any] | None:
    return {"key": key, "values": values} if values else None


def discovery_formats(api_host: str) -> list[str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://{api_host}/discovery/v1/apis/arvados/v1/rest", context=context) as response:
        return json.load(response).get("dockerImageFormats") or []


def actual_values(answer: dict[str, t.Any], key: str) -> list[str]:
    if key == "portable_data_hash":
        return [answer["portable_data_hash"]]
    return [candidate["uuid"] for candidate in answer["candidates"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("context_file")
    parser.add_argument("user")
    parser.add_argument("terms_file")
    parser.add_argument("--actual")
    parser.add_argument("--upstream", nargs="*", default=[])
    args = parser.parse_args()
    context, terms = _load(args.context_file), _load(args.terms_file)
    actual = {answer["term"]: answer for answer in _load(args.actual)} if args.actual else {}
    api = arvados.api("v1", host=context["api_host"], token=context["users"][args.user]["token"], insecure=True, num_retries=2)
    view = View(api, discovery_formats(context["api_host"]), context["system_user_uuid"])
    expected = {term: view.expected(term) for term in terms}
    mismatches = []
    for term, wanted in expected.items():
        got = actual_values(actual[term], wanted["key"]) if term in actual and wanted else None
        if (wanted is None) != (term not in actual) or (wanted is not None and got != wanted["values"]):
            mismatches.append({"term": term, "expected": wanted, "actual": got if term in actual else "missing"})
    upstream_first = {}
    for term in args.upstream:
        repo, _colon, tag = term.rpartition(":")
        listing = list_images_in_arv(api, 2, image_name=repo, image_tag=tag)
        upstream_first[term] = listing[0][0] if listing else None
    result = {"compared": len(expected), "mismatches": mismatches if args.actual else None, "upstream_first": upstream_first}
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


def _load(path: str) -> t.Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


if __name__ == "__main__":
    main()
