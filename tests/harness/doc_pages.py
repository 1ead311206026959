"""Renders the ansible-doc page of every module, plugin and role of the collection, failing on any error."""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys

COLLECTION = "arvados.cluster"
ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN_DIRS = {"module": "modules", "lookup": "lookup", "filter": "filter", "inventory": "inventory"}
# `ansible-doc -t role` of ansible-core 2.21 scans its own internal collection, which has no version, and says so.
CORE_NOISE = re.compile(r"^\[WARNING\]: Collection at '.*/ansible_collections/ansible/_protomatter' does not have a MANIFEST\.json.*$",
                        re.MULTILINE)


def documented_content(root: pathlib.Path) -> list[tuple[str, str]]:
    """(type, fully qualified name) of every plugin file and role in the collection."""
    content = []
    for plugin_type, folder in PLUGIN_DIRS.items():
        for path in sorted((root / "plugins" / folder).glob("*.py")):
            if not path.name.startswith("_"):
                content.append((plugin_type, f"{COLLECTION}.{path.stem}"))
    for role in sorted((root / "roles").glob("*/meta/argument_specs.yml")):
        content.append(("role", f"{COLLECTION}.{role.parent.parent.name}"))
    return content


def render(ansible_doc: str, plugin_type: str, name: str, env: dict[str, str]) -> str | None:
    """The error of rendering one page, or None when it rendered with examples."""
    result = subprocess.run([ansible_doc, "-t", plugin_type, name], capture_output=True, text=True, env=env, check=False)
    stderr = CORE_NOISE.sub("", result.stderr)
    if result.returncode != 0 or "ERROR" in stderr or "WARNING" in stderr:
        return stderr.strip() or f"exit {result.returncode}"
    if plugin_type != "role" and "EXAMPLES:" not in result.stdout:
        return "the page has no EXAMPLES"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collections-path", required=True)
    parser.add_argument("--ansible-doc", default="ansible-doc")
    args = parser.parse_args()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=args.collections_path, ANSIBLE_NOCOLOR="1")
    failures = 0
    for plugin_type, name in documented_content(ROOT):
        error = render(args.ansible_doc, plugin_type, name, env)
        print(f"{'FAIL' if error else 'ok'}: ansible-doc -t {plugin_type} {name}" + (f"\n{error}" if error else ""))
        failures += bool(error)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
