"""Provides ansible-test's pip bootstrap script offline.

ansible-test starts every virtual environment by running a get-pip script it downloads from a host this
machine cannot reach, unless the script is already in ~/.ansible/test/cache. This writes a small
stand-in there that installs the same pip version from a wheel fetched from the package index.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys

STAND_IN = '''\
"""Installs pip {version} from the wheel beside this file (a stand-in for get-pip.py)."""
import os
import sys

WHEELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wheels")
sys.path.insert(0, os.path.join(WHEELS, "{wheel}"))

from pip._internal.cli.main import main  # noqa: E402

ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", WHEELS] + ARGS))
'''


def pip_version_of(ansible_test: pathlib.Path) -> str:
    """The pip version that this ansible-test bootstraps into its virtual environments."""
    python = ansible_test.parent / "python"
    package_dir = subprocess.run(
        [str(python), "-c", "import ansible_test, os; print(os.path.dirname(ansible_test.__file__))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    source = pathlib.Path(package_dir, "_internal", "python_requirements.py").read_text(encoding="utf-8")
    match = re.search(r"pip='([0-9.]+)'", source)
    if not match:
        raise SystemExit(f"cannot find the bootstrap pip version in {package_dir}")
    return match.group(1)


def fetch_wheel(version: str, wheels: pathlib.Path) -> pathlib.Path:
    """The pip wheel of that version, downloaded once."""
    found = sorted(wheels.glob(f"pip-{version}-*.whl"))
    if not found:
        # Its output only on failure: pip warns about every configured index that lacks a page for pip.
        download = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                                   "--no-deps", "--only-binary", ":all:", "-d", str(wheels), f"pip=={version}"],
                                  capture_output=True, text=True, check=False)
        if download.returncode != 0:
            raise SystemExit(f"cannot download pip {version}:\n{download.stdout}{download.stderr}")
        found = sorted(wheels.glob(f"pip-{version}-*.whl"))
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=pathlib.Path, required=True)
    parser.add_argument("--ansible-test", type=pathlib.Path, action="append", required=True)
    args = parser.parse_args()
    wheels = args.cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for version in sorted({pip_version_of(path) for path in args.ansible_test}):
        wheel = fetch_wheel(version, wheels)
        script = args.cache_dir / f"get_pip_{version.replace('.', '_')}.py"
        script.write_text(STAND_IN.format(version=version, wheel=wheel.name), encoding="utf-8")


if __name__ == "__main__":
    main()
