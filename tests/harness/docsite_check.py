"""Opens every page of the built docsite in headless Chromium and checks it against the collection's own docs.

Each plugin and role has its page, named as antsibull-docs names it; on it, every option (suboptions included),
the EXAMPLES and every return value that `ansible-doc --json` gives; every link between the site's pages leads to a
page and anchor that exist. Screenshots of the collection's pages are written for people to look at.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import html.parser
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import typing as t
import urllib.parse

from doc_pages import COLLECTION, ROOT, documented_content

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


class Page(html.parser.HTMLParser):
    """What a check needs of a DOM: element ids, link targets, the text of code blocks and of the whole page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.code: list[str] = []
        self.text: list[str] = []
        self._pre_depth = 0
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"] or "")
        if tag == "a" and attributes.get("href") is not None:
            self.links.append(attributes["href"] or "")
        if tag == "pre":
            self._pre_depth += 1
            self.code.append("")
        if tag in ("script", "style"):
            self._skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre_depth -= 1
        if tag in ("script", "style"):
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        self.text.append(data)
        if self._pre_depth:
            self.code[-1] += data


def chromium(binary: str, *args: str) -> str:
    """One headless Chromium run with a profile of its own; its standard output."""
    with tempfile.TemporaryDirectory(prefix="docsite-chromium-") as profile:
        result = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                                capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"chromium {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def open_page(binary: str, path: pathlib.Path) -> Page:
    page = Page()
    page.feed(chromium(binary, "--dump-dom", path.as_uri()))
    return page


def screenshot(binary: str, path: pathlib.Path, shot: pathlib.Path) -> None:
    chromium(binary, "--window-size=1280,2400", f"--screenshot={shot}", path.as_uri())


def option_paths(options: dict[str, t.Any], children: str, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every option (or return value) name as a path, nested ones under their parent."""
    paths = []
    for name, spec in sorted((options or {}).items()):
        paths.append(prefix + (name,))
        paths.extend(option_paths(spec.get(children) or {}, children, prefix + (name,)))
    return paths


def expected_anchors(plugin_type: str, doc: dict[str, t.Any]) -> list[tuple[str, str]]:
    """(anchor antsibull-docs gives it, name) of each documented option and return value."""
    if plugin_type == "role":
        return [(f"parameter-{entry}--{'/'.join(path)}", path[-1]) for entry, spec in doc["entry_points"].items()
                for path in option_paths(spec.get("options") or {}, "options")]
    options = option_paths(doc["doc"].get("options") or {}, "suboptions")
    returns = option_paths(doc.get("return") or {}, "contains")
    return ([(f"parameter-{'/'.join(path)}", path[-1]) for path in options]
            + [(f"return-{'/'.join(path)}", path[-1]) for path in returns])


def lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def page_problems(plugin_type: str, doc: dict[str, t.Any], page: Page) -> list[str]:
    """What the page of one plugin or role lacks."""
    text = " ".join(" ".join(page.text).split())
    problems = []
    for anchor, name in expected_anchors(plugin_type, doc):
        if anchor not in page.ids:
            problems.append(f"no anchor {anchor}")
        if not name.startswith("_") and name not in text:  # _terms, _input, _raw, _value have headings instead
            problems.append(f"{name} is not shown")
    examples = lines(doc.get("examples") or "")
    shown = "\n".join("\n".join(lines(block)) for block in page.code)
    if plugin_type != "role" and (not examples or "\n".join(examples) not in shown):
        problems.append("the EXAMPLES are not shown as written")
    return problems


def link_problems(site: pathlib.Path, pages: dict[pathlib.Path, Page]) -> list[str]:
    """Every link between the site's pages: the page exists, and so does the anchor."""
    problems = []
    for path, page in sorted(pages.items()):
        for href in page.links:
            if not href or EXTERNAL.match(href):
                continue
            target, fragment = urllib.parse.urldefrag(href)
            base = site if target.startswith("/") else path.parent  # the theme's home link is the site's root
            file = (base / urllib.parse.unquote(target.lstrip("/"))).resolve() if target else path
            if target.endswith("/"):
                file = file / "index.html"
            where = f"{path.relative_to(site)}: {href}"
            if not file.is_file() or site.resolve() not in file.parents:
                problems.append(f"{where}: no such page")
            elif fragment and file in pages and fragment not in pages[file].ids:
                problems.append(f"{where}: no such anchor")
    return problems


def ansible_doc(binary: str, plugin_type: str, name: str, env: dict[str, str]) -> dict[str, t.Any]:
    output = subprocess.run([binary, "--json", "-t", plugin_type, name], capture_output=True, text=True, env=env,
                            check=True).stdout
    return json.loads(output)[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", type=pathlib.Path, required=True, help="the built HTML")
    parser.add_argument("--shots", type=pathlib.Path, required=True, help="where screenshots are written")
    parser.add_argument("--collections-path", required=True)
    parser.add_argument("--ansible-doc", default="ansible-doc")
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=args.collections_path, ANSIBLE_NOCOLOR="1")
    site = args.site.resolve()
    collection_dir = site / "collections" / COLLECTION.replace(".", "/")
    files = sorted(site.rglob("*.html"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        pages = dict(zip(files, pool.map(lambda path: open_page(args.chromium, path), files)))
        args.shots.mkdir(parents=True, exist_ok=True)
        shots = sorted(collection_dir.rglob("*.html"))
        list(pool.map(lambda path: screenshot(args.chromium, path, args.shots / f"{path.stem}.png"), shots))
    problems = link_problems(site, pages)
    checked = 0
    for plugin_type, name in documented_content(ROOT):
        page_file = collection_dir / f"{name.rsplit('.', 1)[-1]}_{plugin_type}.html"
        if page_file not in pages:
            problems.append(f"{name}: no page {page_file.name}")
            continue
        doc = ansible_doc(args.ansible_doc, plugin_type, name, env)
        problems += [f"{page_file.name}: {problem}" for problem in page_problems(plugin_type, doc, pages[page_file])]
        checked += len(expected_anchors(plugin_type, doc))
    if problems:
        sys.exit("docsite check failed:\n" + "\n".join(problems))
    print(f"docsite check: {len(pages)} pages opened in Chromium, {checked} options and return values and every "
          f"example found, {sum(len(page.links) for page in pages.values())} links followed; screenshots in {args.shots}")


if __name__ == "__main__":
    main()
