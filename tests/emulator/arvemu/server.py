"""Process wiring: open the data directory, start the API (HTTPS) and Keep (HTTP) servers, write the ready file."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pathlib
import re
import secrets
import signal
import socket
import tempfile
import threading
import typing as t

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from . import ids
from .certificates import ensure_certificate
from .cluster import Bootstrap, Cluster, Settings, identities
from .keep import BlockStore, KeepApp
from .routing import ApiApp
from .signing import SigningKey
from .storage import Database
from .traffic import SOCKET_KEY, TrafficControl, TrafficMiddleware

LOG = logging.getLogger("arvemu")
DEFAULT_CLUSTER_ID = "zzzzz"


class SocketGateway(wsgi.Gateway_10):
    """Puts the client socket into the WSGI environ, so a fault can cut the connection mid-request."""

    def get_environ(self) -> dict:
        environ = super().get_environ()
        environ[SOCKET_KEY] = self.req.conn.socket
        return environ


@dataclasses.dataclass
class Options:
    data_dir: pathlib.Path
    ready_file: pathlib.Path
    host: str = "127.0.0.1"
    port: int = 0
    docker_image_formats: tuple[str, ...] = ("v2",)
    cluster_id: str | None = None


def parse_arguments(argv: t.Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="Serve an emulated Arvados API and Keep service.")
    parser.add_argument("--data-dir", required=True, type=pathlib.Path, help="where the database, blocks and certificate live")
    parser.add_argument("--ready-file", required=True, type=pathlib.Path, help="JSON file written once the servers accept requests")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", default=0, type=int, help="API port; 0 picks a free one")
    parser.add_argument("--docker-image-formats", default="v2", help="comma-separated dockerImageFormats, e.g. v2 or v2,v1")
    parser.add_argument("--cluster-id", type=_cluster_id, help=f"the five-character uuid prefix (default {DEFAULT_CLUSTER_ID}); "
                        "fixed by the data directory's first start")
    arguments = parser.parse_args(argv)
    formats = tuple(name.strip() for name in arguments.docker_image_formats.split(",") if name.strip())
    return Options(arguments.data_dir.resolve(), arguments.ready_file.resolve(), arguments.host, arguments.port, formats,
                   arguments.cluster_id)


def _cluster_id(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]{5}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not five lower-case letters or digits")
    return value


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def make_server(host: str, port: int, app: t.Callable, threads: int) -> wsgi.Server:
    """cheroot sets SO_REUSEADDR only on a fixed port, and a restart must be able to bind the same port again."""
    server = wsgi.Server((host, port or free_port(host)), app, numthreads=threads, timeout=60, shutdown_timeout=2,
                         request_queue_size=64)
    server.gateway = SocketGateway
    return server


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def load_settings(db: Database, options: Options) -> Settings:
    """Identity that must survive restarts (cluster id, signing key) lives in the database."""
    cluster_id = db.setting("cluster_id") or options.cluster_id or DEFAULT_CLUSTER_ID
    if options.cluster_id and options.cluster_id != cluster_id:
        raise SystemExit(f"--cluster-id {options.cluster_id}: {options.data_dir} already holds cluster {cluster_id}")
    key = db.setting("blob_signing_key") or secrets.token_hex(32)
    db.set_setting("cluster_id", cluster_id)
    db.set_setting("blob_signing_key", key)
    return Settings(cluster_id=cluster_id, signing_key=SigningKey(key.encode()),
                    docker_image_formats=list(options.docker_image_formats), keep_host=options.host)


def write_ready_file(path: pathlib.Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".ready-")
    with os.fdopen(descriptor, "w") as ready:
        json.dump(payload, ready, indent=2, sort_keys=True)
    os.replace(temporary, path)


class EmulatorProcess:
    """Owns the two servers and their threads for the life of the process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        options.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(options.data_dir / "arvados.sqlite3")
        self.settings = load_settings(self.db, options)
        self.cluster = Cluster(self.db, self.settings)
        self.control = TrafficControl()
        self.servers: list[wsgi.Server] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> dict:
        keep_server = self.start_keep()
        self.settings.keep_port = keep_server.bind_addr[1]
        self.db.set_setting("keep_port", str(self.settings.keep_port))
        Bootstrap(self.cluster).run()
        api_server = self.start_api()
        return self.ready_payload(api_server.bind_addr[1])

    def start_keep(self) -> wsgi.Server:
        previous = int(self.db.setting("keep_port") or 0)
        port = previous if previous and port_is_free(self.options.host, previous) else 0
        app = TrafficMiddleware(KeepApp(BlockStore(self.options.data_dir / "keep"), self.settings.signing_key),
                                self.control, "keep")
        return self.launch(make_server(self.options.host, port, app, threads=16), "keep")

    def start_api(self) -> wsgi.Server:
        certificate, key = ensure_certificate(self.options.data_dir, self.options.host)
        app = TrafficMiddleware(ApiApp(self.cluster, self.control), self.control, "api")
        server = make_server(self.options.host, self.options.port, app, threads=32)
        server.ssl_adapter = BuiltinSSLAdapter(str(certificate), str(key))
        return self.launch(server, "api")

    def launch(self, server: wsgi.Server, name: str) -> wsgi.Server:
        server.prepare()
        thread = threading.Thread(target=server.serve, name=f"{name}-server", daemon=True)
        thread.start()
        self.servers.append(server)
        self.threads.append(thread)
        LOG.info("%s listening on %s:%s", name, *server.bind_addr[:2])
        return server

    def ready_payload(self, api_port: int) -> dict:
        users = identities(self.cluster)
        return {
            "api_host": f"{self.options.host}:{api_port}",
            "api_token": users["alice"]["token"],
            "insecure": True,
            "users": users,
            "admin_token": users["admin"]["token"],
            "system_user_uuid": self.settings.system_user_uuid,
            "keep_url": f"http://{self.settings.keep_host}:{self.settings.keep_port}/",
            "cluster_id": self.settings.cluster_id,
            "all_users_group_uuid": ids.all_users_group_uuid(self.settings.cluster_id),
            "certificate": str(self.options.data_dir / "tls.crt"),
            "data_dir": str(self.options.data_dir),
            "pid": os.getpid(),
        }

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        for thread in self.threads:
            thread.join(timeout=5)
        self.db.close()


def main(argv: t.Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = parse_arguments(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    process = EmulatorProcess(options)
    try:
        write_ready_file(options.ready_file, process.start())
        LOG.info("ready: %s", options.ready_file)
        while not stopping.wait(3600):
            pass
    finally:
        LOG.info("stopping")
        process.stop()
    return 0
