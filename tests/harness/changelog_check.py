"""Lints the changelog fragments and renders the next release's CHANGELOG in a copy of the collection.

The release is a dry run: it happens in a temporary copy, so the repository's changelog state stays as it is. Every
entry of every fragment must appear in the rendered CHANGELOG.rst under its section's title (trivial ones are never
rendered), and every plugin under the release's "New ..." lists.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import typing as t

import yaml

from doc_pages import documented_content

RELEASE_DATE = "2000-01-01"


def section_titles(config: dict[str, t.Any]) -> dict[str, str]:
    titles = dict(config["sections"])
    titles[config["prelude_section_name"]] = config["prelude_section_title"]
    return titles


def rendered_sections(changelog: str) -> dict[str, str]:
    """The text under each section heading of the one release in an RST changelog."""
    parts = re.split(r"^(.+)\n-{3,}\n", changelog, flags=re.MULTILINE)
    return {parts[index].strip(): " ".join(parts[index + 1].split()) for index in range(1, len(parts) - 1, 2)}


def fragment_entries(collection: pathlib.Path) -> list[tuple[str, str, str]]:
    """(fragment, section title, entry) of every entry a release renders."""
    config = yaml.safe_load((collection / "changelogs" / "config.yaml").read_text(encoding="utf-8"))
    titles = section_titles(config)
    entries = []
    for fragment in sorted((collection / "changelogs" / "fragments").glob("*.y*ml")):
        for section, texts in yaml.safe_load(fragment.read_text(encoding="utf-8")).items():
            if section != config["trivial_section_name"]:
                entries += [(fragment.name, titles[section], text) for text in ([texts] if isinstance(texts, str) else texts)]
    return entries


def missing_entries(entries: list[tuple[str, str, str]], changelog: str) -> list[str]:
    """Fragment entries that are not under their section's title."""
    sections = rendered_sections(changelog)
    return [f"{fragment}: an entry is not under '{title}': {text[:60]}" for fragment, title, text in entries
            if " ".join(text.split()) not in sections.get(title, "")]


def missing_plugins(copy: pathlib.Path, changelog: str) -> list[str]:
    """Plugins the release does not list as new (roles are listed only with version_added, so not asked for)."""
    new = " ".join(text for title, text in rendered_sections(changelog).items() if title.startswith("New "))
    return [f"{name} is not listed as new" for kind, name in documented_content(copy) if kind != "role" and name not in new]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collection", type=pathlib.Path, required=True, help="the staged collection")
    parser.add_argument("--output", type=pathlib.Path, required=True, help="where the rendered CHANGELOG.rst is kept")
    parser.add_argument("--antsibull-changelog", default="antsibull-changelog")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="changelog-check-") as temp:
        copy = pathlib.Path(temp) / "ansible_collections" / "arvados" / "cluster"
        shutil.copytree(args.collection, copy, ignore=shutil.ignore_patterns(".git"))
        subprocess.run([args.antsibull_changelog, "lint"], cwd=copy, check=True)
        entries = fragment_entries(copy)  # read before the release, which removes the fragments
        # The release reads the new plugins through ansible-doc, from the venv that holds antsibull-changelog.
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=temp,
                   PATH=f"{pathlib.Path(args.antsibull_changelog).parent}{os.pathsep}{os.environ['PATH']}")
        subprocess.run([args.antsibull_changelog, "release", "--date", RELEASE_DATE], cwd=copy, check=True, env=env)
        changelog = (copy / "CHANGELOG.rst").read_text(encoding="utf-8")
    args.output.write_text(changelog, encoding="utf-8")
    problems = missing_entries(entries, changelog) + missing_plugins(args.collection, changelog)
    if problems:
        sys.exit("changelog check failed:\n" + "\n".join(problems))
    print(f"changelog check: lint passed; the release dry run renders {len(entries)} entries, each in its section, "
          f"and every plugin as new ({args.output})")


if __name__ == "__main__":
    main()
