"""The README's first command: ensure a Docker image in Arvados twice and show what a container would run.

Against the cluster in ARVADOS_API_HOST / ARVADOS_API_TOKEN when they are set, otherwise against the
bundled emulator on a fresh temporary data directory. The image comes from the local Docker daemon when
one answers, otherwise from an image archive written here with no Docker at all.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.emulator import Emulator  # noqa: E402  pylint: disable=wrong-import-position

IMAGE_REPO = "demo/busybox"
IMAGE_TAG = "1.0"
BUSYBOX = pathlib.Path("/bin/busybox")


def busybox_layer() -> bytes:
    """A root file system of one static busybox and /bin/sh, as an uncompressed layer tar."""
    if not BUSYBOX.exists():
        raise SystemExit(f"{BUSYBOX} is missing: install Debian's busybox-static (make deps does)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as layer:
        layer.addfile(_tar_entry("bin/", tarfile.DIRTYPE, 0o755))
        data = BUSYBOX.read_bytes()
        layer.addfile(_tar_entry("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        shell = _tar_entry("bin/sh", tarfile.SYMTYPE, 0o777)
        shell.linkname = "busybox"
        layer.addfile(shell)
    return buffer.getvalue()


def _tar_entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode, entry.size, entry.mtime = kind, mode, size, 0
    return entry


def write_image_archive(path: pathlib.Path) -> None:
    """A `docker save`-style archive of the demo image, made without a Docker daemon."""
    layer = busybox_layer()
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]},
    }, sort_keys=True).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": [f"{IMAGE_REPO}:{IMAGE_TAG}"],
                            "Layers": [f"{layer_hex}/layer.tar"]}]).encode()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in ((f"{layer_hex}/layer.tar", layer), (f"{config_hex}.json", config), ("manifest.json", manifest)):
            archive.addfile(_tar_entry(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))


def image_in_local_daemon() -> bool:
    """Puts the demo image into the local Docker daemon, if one answers; False when there is none."""
    try:
        import docker  # pylint: disable=import-outside-toplevel
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception:  # pylint: disable=broad-exception-caught
        return False
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(f"{IMAGE_REPO}:{IMAGE_TAG}")
        return True
    client.api.import_image_from_data(busybox_layer(), repository=IMAGE_REPO, tag=IMAGE_TAG, changes=['CMD ["/bin/sh"]'])
    return True


@contextlib.contextmanager
def cluster(work_dir: pathlib.Path) -> t.Iterator[dict[str, str]]:
    """ARVADOS_* settings of the configured cluster, or of an emulator started (and stopped) here."""
    if os.environ.get("ARVADOS_API_HOST"):
        print(f"Using the Arvados cluster at {os.environ['ARVADOS_API_HOST']}")
        yield {}
        return
    emulator = Emulator(work_dir / "emulator").start()
    print(f"Started the bundled Arvados emulator at {emulator.api_host} (data in {work_dir / 'emulator'})")
    try:
        yield emulator.env()
    finally:
        emulator.stop()


def run_playbook(collections_path: str, settings: dict[str, str], extra_vars: dict[str, str]) -> str:
    """One run of the demo playbook; its output is shown as it comes (stderr passes straight through) and returned."""
    env = dict(os.environ, **settings, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "demo" / "inventory"),
               str(ROOT / "demo" / "playbook.yml"), "-e", json.dumps(extra_vars)]
    lines = []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, bufsize=1) as playbook:
        for line in playbook.stdout or []:
            print(line, end="", flush=True)
            lines.append(line)
    if playbook.returncode != 0:
        raise SystemExit(f"the demo playbook failed (exit {playbook.returncode})")
    return "".join(lines)


def recap_changed(output: str) -> int:
    match = re.search(r"changed=(\d+)", output.rsplit("PLAY RECAP", 1)[-1])
    return int(match.group(1)) if match else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collections-path", required=True, help="folder holding ansible_collections/arvados/cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arvados-cluster-demo-") as scratch:
        work_dir = pathlib.Path(scratch)
        extra_vars = {"demo_image_name": IMAGE_REPO, "demo_image_tag": IMAGE_TAG, "demo_image_source": "local"}
        if image_in_local_daemon():
            print(f"Using {IMAGE_REPO}:{IMAGE_TAG} from the local Docker daemon")
        else:
            archive = work_dir / "demo-busybox.tar"
            write_image_archive(archive)
            extra_vars.update(demo_image_source="archive", demo_image_archive=str(archive))
            print(f"No Docker daemon answered: using an image archive built here, {archive}")
        with cluster(work_dir) as settings:
            first = run_playbook(args.collections_path, settings, extra_vars)
            second = run_playbook(args.collections_path, settings, extra_vars)
    pdh = re.search(r"resolve it to ([0-9a-f]{32}\+[0-9]+)", second)
    print(f"first run: {'changed' if recap_changed(first) > 0 else 'ok'}")
    print(f"second run: {'changed' if recap_changed(second) > 0 else 'ok'}")
    print(f"container_image for container requests: {pdh.group(1) if pdh else 'unknown'}")
    if recap_changed(second) != 0:
        raise SystemExit("the second run should have changed nothing")


if __name__ == "__main__":
    main()
