"""Builds the collection's docsite offline with antsibull-docs: sphinx-init, collection docs, sphinx-build.

The site's plugin pages come from the plugins' DOCUMENTATION, EXAMPLES and RETURN and the role's argument specs;
its guides from docs/docsite (extra-docs.yml and rst/). sphinx-init's intersphinx mapping fetches inventories from
the internet, so it is dropped; references into Ansible's own docs (the only ones it served) then stay plain text,
and Sphinx's warning for each is allowed. Any other warning fails the build.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys

COLLECTION = "arvados.cluster"
OFFLINE_CONF = "\n# Offline build: no inventories fetched from the internet.\nintersphinx_mapping = {}\n"
# A label outside this collection's pages, which only intersphinx could have resolved.
FOREIGN_LABEL = re.compile(r"WARNING: undefined label: '(?!ansible_collections\.arvados\.cluster\.)[^']+' \[ref\.ref\]$")


def run(command: list[str], env: dict[str, str], cwd: pathlib.Path | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env, cwd=cwd)


def sphinx_init(bin_dir: pathlib.Path, source: pathlib.Path, env: dict[str, str]) -> None:
    """The Sphinx project sphinx-init writes, made offline."""
    run([str(bin_dir / "antsibull-docs"), "sphinx-init", "--use-current", "--fail-on-error", "--dest-dir", str(source),
         "--project", COLLECTION, "--copyright", "arvados.cluster contributors",
         "--title", "arvados.cluster", "--html-short-title", "arvados.cluster", COLLECTION], env)
    with (source / "conf.py").open("a", encoding="utf-8") as conf:
        conf.write(OFFLINE_CONF)


def collection_docs(bin_dir: pathlib.Path, source: pathlib.Path, env: dict[str, str]) -> None:
    """The collection's RST pages, plugins, role and guides, as sphinx-init's build.sh makes them."""
    rst = source / "rst"
    rst.mkdir(mode=0o755, exist_ok=True)
    run([str(bin_dir / "antsibull-docs"), "--config-file", str(source / "antsibull-docs.cfg"), "collection",
         "--cleanup", "everything", "--fail-on-error", "--use-current", "--dest-dir", str(rst), COLLECTION], env)


def sphinx_build(bin_dir: pathlib.Path, source: pathlib.Path, html: pathlib.Path, env: dict[str, str]) -> list[str]:
    """Builds the HTML; returns the warnings that are not foreign labels."""
    warnings_file = source / "warnings.txt"
    run([str(bin_dir / "sphinx-build"), "-b", "html", "-q", "-c", str(source), "-w", str(warnings_file),
         str(source / "rst"), str(html)], env)
    lines = [line for line in warnings_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line for line in lines if not FOREIGN_LABEL.search(line)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collections-path", required=True, help="the folder above ansible_collections/")
    parser.add_argument("--bin-dir", type=pathlib.Path, required=True, help="the venv's bin/ with antsibull-docs")
    parser.add_argument("--source", type=pathlib.Path, required=True, help="where the Sphinx project is written")
    parser.add_argument("--html", type=pathlib.Path, required=True, help="where the HTML pages are written")
    args = parser.parse_args()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=args.collections_path, ANSIBLE_NOCOLOR="1",
               PATH=f"{args.bin_dir}{os.pathsep}{os.environ['PATH']}")
    for folder in (args.source, args.html):
        shutil.rmtree(folder, ignore_errors=True)
    args.source.mkdir(mode=0o755, parents=True)  # sphinx-init wants a folder only its owner can write
    sphinx_init(args.bin_dir, args.source, env)
    collection_docs(args.bin_dir, args.source, env)
    unexpected = sphinx_build(args.bin_dir, args.source, args.html, env)
    if unexpected:
        sys.exit("docsite: Sphinx warned:\n" + "\n".join(unexpected))
    print(f"docsite: {args.html / 'index.html'}")


if __name__ == "__main__":
    main()
