# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The one Arvados client of the collection: connection options -> SDK client, and errors a user can act on.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import random
import re
import socket
import ssl
import sys
import threading
import time
import typing as t
from dataclasses import dataclass

from ansible.module_utils.basic import env_fallback

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError, OptionError

try:
    import arvados
    import arvados.api
    import arvados.config
    import arvados.errors
    import arvados.keep
    import httplib2
    from googleapiclient.http import HttpRequest

    from ansible_collections.arvados.cluster.plugins.module_utils._thread_clients import SharedDiscoveryDocument
    ARVADOS_IMPORT_ERROR = None
    # What a request can fail with on the way to and from the server; anything else is a bug and stays loud.
    REQUEST_ERRORS: tuple[type[BaseException], ...] = (arvados.errors.ApiError, httplib2.HttpLib2Error, OSError)
    KEEP_SERVICES_ERRORS: tuple[type[BaseException], ...] = REQUEST_ERRORS + (arvados.errors.NoKeepServersError,)
except ImportError as exc:  # reported by the caller
    ARVADOS_IMPORT_ERROR = exc
    REQUEST_ERRORS = (OSError,)
    KEEP_SERVICES_ERRORS = REQUEST_ERRORS

DEFAULT_NUM_RETRIES = 5
DEFAULT_API_TIMEOUT = 20
# Retries of one request start only within this many api_timeouts of its first attempt, so a request that keeps
# failing ends within one api_timeout more: 60 s at the defaults, whatever num_retries allows.
RETRY_WINDOW_IN_TIMEOUTS = 2
# Answers the Arvados SDK treats as temporary (arvados.retry), besides every 5xx.
TRANSIENT_STATUSES = frozenset((408, 409, 423, 429))
# Connection failures worth another attempt; a refused connection may be a server restarting.
TRANSIENT_ERRNOS = frozenset((errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT))
# TLS errors that mean the server at that address does not talk TLS at all: a wrong host or port.
NOT_TLS_REASONS = frozenset(("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"))
# The SDK puts the request id in front of transport error messages; it means nothing to a user.
_REQUEST_ID_PREFIX = re.compile(r"^\[req-[0-9a-z]+\] ")
# The controller names the API server behind it in the errors it relays (lib/controller/rpc/conn.go), with the status
# again: `//railsapi.internal/arvados/v1/groups/<uuid>: 404 Not Found: Path not found`. Neither helps a user.
_RAILS_API_PREFIX = re.compile(r"//railsapi\.internal/\S*: (?:\d{3} [^:]*: )?")
# A v2 token: `v2/<token uuid>/<secret>`; the uuid's first five characters name the cluster that issued it.
_V2_TOKEN = re.compile(r"v2/([a-z0-9]{5})-gj3su-[a-z0-9]{15}/")

ARVADOS_CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "api_host": {"type": "str", "fallback": (env_fallback, ["ARVADOS_API_HOST"])},
    "api_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["ARVADOS_API_TOKEN"])},
    "api_insecure": {"type": "bool", "fallback": (env_fallback, ["ARVADOS_API_HOST_INSECURE"])},
    "num_retries": {"type": "int", "default": DEFAULT_NUM_RETRIES},
    "api_timeout": {"type": "int", "default": DEFAULT_API_TIMEOUT},
}

TRUE_WORDS = frozenset(("1", "t", "true", "y", "yes", "on"))
# Where a missing host or token can be given, in the order the collection reads them (doc fragment arvados.cluster.arvados).
_WHERE_TO_SET = ("set {option} (or the variable arvados_{option}), or {variable} in the environment of the host that runs this "
                 "or in its ~/.config/arvados/settings.conf")
# Each connection option's environment variable, named in messages that say where to fix it.
_ENVIRONMENT_NAMES = {"api_host": "ARVADOS_API_HOST", "api_token": "ARVADOS_API_TOKEN", "api_insecure": "ARVADOS_API_HOST_INSECURE"}


@dataclass(frozen=True)
class ConnectionOptions:
    api_host: str
    api_token: str = ""
    api_insecure: bool = False
    num_retries: int = DEFAULT_NUM_RETRIES
    api_timeout: int = DEFAULT_API_TIMEOUT
    # Prefix of the options that set this connection ("source_" for a source cluster), for messages that name them.
    option_prefix: str = ""

    def __repr__(self) -> str:
        return f"ConnectionOptions(api_host={self.api_host!r}, api_insecure={self.api_insecure!r})"


def _as_bool(value: t.Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in TRUE_WORDS


def _settings_file_value(name: str) -> str | None:
    """A value from ~/.config/arvados/settings.conf, as the Arvados tools read it."""
    if ARVADOS_IMPORT_ERROR is not None:
        return None
    return arvados.config.settings().get(name) or None


def option_hint(options: ConnectionOptions, option: str) -> str:
    """Where a connection option is set, in a message: `api_token / ARVADOS_API_TOKEN`, or the source's option and variable."""
    if options.option_prefix:
        return f"{options.option_prefix}{option} / arvados_{options.option_prefix}{option}"
    return f"{option} / {_ENVIRONMENT_NAMES[option]}"


def connection_options(get: t.Callable[[str], t.Any], settings_value: t.Callable[[str], str | None] | None = None,
                       where_to_set: str = _WHERE_TO_SET, option_prefix: str = "") -> ConnectionOptions:
    """The connection options, from what `get` returns for each option's name, else the settings file.

    The one constructor of ConnectionOptions. `get` answers from the sources that come first in the collection's one
    precedence (the doc fragment arvados.cluster.arvados tells it): a module's params (its options, the arvados_*
    variables its action plugin added, then its environment fallbacks), or the lookup's options, variables, environment
    and ansible.cfg (plugin_utils._connection.lookup_connection). What none of them sets comes from
    ~/.config/arvados/settings.conf, as the Arvados command-line tools read it. A source cluster's connection passes
    its own `settings_value` (arv-copy's per-cluster file), `where_to_set` and `option_prefix`.
    """
    settings_value = settings_value or _settings_file_value
    api_host = get("api_host") or settings_value("ARVADOS_API_HOST")
    api_token = get("api_token") or settings_value("ARVADOS_API_TOKEN")
    insecure = get("api_insecure")
    if insecure is None:
        insecure = settings_value("ARVADOS_API_HOST_INSECURE")
    if not api_host:
        raise ArvadosClientError(f"no Arvados API host: {where_to_set.format(option='api_host', variable='ARVADOS_API_HOST')}")
    if not api_token:
        raise ArvadosClientError(f"no Arvados API token: {where_to_set.format(option='api_token', variable='ARVADOS_API_TOKEN')}")
    return ConnectionOptions(
        api_host=str(api_host).strip().rstrip("/"),
        api_token=str(api_token).strip(),
        api_insecure=_as_bool(insecure),
        num_retries=_as_int("num_retries", get("num_retries"), DEFAULT_NUM_RETRIES),
        api_timeout=_as_int("api_timeout", get("api_timeout"), DEFAULT_API_TIMEOUT) or DEFAULT_API_TIMEOUT,
        option_prefix=option_prefix,
    )


def _as_int(option: str, value: t.Any, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise OptionError(f"{option}: {value!r} is not a whole number") from None


def _host_and_port(api_host: str) -> tuple[str, int]:
    host, _sep, port = api_host.rpartition(":")
    if host and port.isdigit():
        return host.strip("[]"), int(port)
    return api_host, 443


def check_reachable(options: ConnectionOptions) -> None:
    """Fail at once on what no retry can mend: an unknown host name, an untrusted certificate, a server without TLS.

    Requests retry every connection failure with a doubling back-off, which would hide these for a minute.
    """
    host, port = _host_and_port(options.api_host)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ArvadosClientError(f"cannot resolve the API host name {host!r} ({exc.strerror}): check {option_hint(options, 'api_host')}") from None
    try:
        with socket.create_connection((host, port), timeout=options.api_timeout) as raw:
            with tls_context(options.api_insecure).wrap_socket(raw, server_hostname=host):
                pass
    except ssl.SSLCertVerificationError as exc:
        raise ArvadosClientError(
            f"the TLS certificate of {options.api_host} is not trusted ({exc.verify_message}): install the cluster's CA certificate, "
            f"or set {options.option_prefix}api_insecure: true ({_insecure_hint(options)}) for a test cluster with a self-signed certificate"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason in NOT_TLS_REASONS:
            raise ArvadosClientError(
                f"{options.api_host} does not talk TLS ({exc.reason}): check {option_hint(options, 'api_host')}, "
                "it must be the host and port of the Arvados API server, which talks HTTPS"
            ) from None
    except OSError:
        return  # refused or timed out: left to the retries, which end in a clear error too


def _insecure_hint(options: ConnectionOptions) -> str:
    return f"arvados_{options.option_prefix}api_insecure" if options.option_prefix else "ARVADOS_API_HOST_INSECURE=1"


@functools.lru_cache(maxsize=None)
def tls_context(insecure: bool) -> ssl.SSLContext:
    """One context per process for each kind: loading the system's CA certificates takes tens of milliseconds, and a
    context that verifies nothing needs none of them."""
    if not insecure:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def describe_error(exc: BaseException, options: ConnectionOptions, cluster_id: str | None = None) -> ArvadosClientError:
    """An SDK or transport exception as a message that names the cause and the fix, without the token.

    `cluster_id` is the server's (its discovery document's `uuidPrefix`), when known.
    """
    status = getattr(getattr(exc, "resp", None), "status", None)
    reason = _api_error_reason(exc) if status else _transport_reason(exc)
    if status == 401:
        message = f"the API server {options.api_host} refused the token (401: {reason}): {refused_token_fix(options, cluster_id)}"
    elif status == 403:
        message = f"permission denied by {options.api_host} (403: {reason})"
    elif status == 404:
        message = f"not found on {options.api_host} (404: {reason})"
    elif status:
        message = f"the API server {options.api_host} answered {status}: {reason}{_retry_account(exc)}"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        message = (f"the API server {options.api_host} did not answer within api_timeout ({options.api_timeout} s){_retry_account(exc)}: "
                   "check that it is up and not overloaded, or raise api_timeout")
    elif isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        message = (f"cannot connect to the API server {options.api_host} ({reason}){_retry_account(exc)}: "
                   f"check {option_hint(options, 'api_host')} and that the server is running")
    else:
        message = f"cannot talk to the API server {options.api_host}: {type(exc).__name__}: {reason}"
    return ArvadosClientError(redact(message, options), status=status)


def refused_token_fix(options: ConnectionOptions, cluster_id: str | None) -> str:
    """What to do about a refused token: one of another cluster cannot work here, any other may have expired."""
    token_cluster = token_cluster_id(options.api_token)
    if cluster_id and token_cluster and token_cluster != cluster_id:
        return (f"the token was issued by cluster {token_cluster}, and {options.api_host} is cluster {cluster_id}: give a token "
                f"of {cluster_id} in {option_hint(options, 'api_token')}, or set {option_hint(options, 'api_host')} to {token_cluster}'s API server")
    return f"check {option_hint(options, 'api_token')}, it may have expired"


def token_cluster_id(api_token: str) -> str | None:
    """The cluster that issued a v2 token (the prefix of its uuid); None for a v1 token, which does not say."""
    match = _V2_TOKEN.match(api_token)
    return match.group(1) if match else None


def _transport_reason(exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return _REQUEST_ID_PREFIX.sub("", reason)


def _retry_account(exc: BaseException) -> str:
    """How long the request was retried before this failure, when it was."""
    schedule = getattr(exc, "retry_schedule", None)
    if schedule is None or not is_transient(exc):
        return ""
    retries = "1 retry" if schedule.retries == 1 else f"{schedule.retries} retries"
    return f"; gave up after {retries} in {schedule.elapsed():.0f} s"


def _api_error_reason(exc: BaseException) -> str:
    reason = getattr(exc, "_get_reason", None)
    return _RAILS_API_PREFIX.sub("", str(reason() if callable(reason) else exc))


def redact(text: str, options: ConnectionOptions) -> str:
    """The text with the token, and its secret part alone, replaced."""
    secret = options.api_token.rsplit("/", 1)[-1]
    for value in (options.api_token, secret):
        if value and len(value) >= 8:
            text = text.replace(value, "********")
    return text


class RetrySchedule:
    """When to send a failed request again: after a random back-off that doubles each time, as the SDK waits,
    for at most `num_retries` retries, and only within `RETRY_WINDOW_IN_TIMEOUTS` api_timeouts of the first attempt.
    """

    def __init__(self, num_retries: int, api_timeout: float, clock: t.Callable[[], float] = time.monotonic,
                 sleep: t.Callable[[float], None] = time.sleep, rand: t.Callable[[], float] = random.random) -> None:
        self.num_retries = max(0, num_retries)
        self.retries = 0
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._started = clock()
        self.deadline = self._started + RETRY_WINDOW_IN_TIMEOUTS * api_timeout

    def elapsed(self) -> float:
        return self._clock() - self._started

    def wait_for_retry(self) -> bool:
        """Sleep before the next retry and return True, or return False when no retry is left."""
        if self.retries >= self.num_retries:
            return False
        delay = self._rand() * 2 ** (self.retries + 1)
        if self._clock() + delay >= self.deadline:
            return False
        self._sleep(delay)
        self.retries += 1
        return True

    def run(self, attempt: t.Callable[[], t.Any]) -> t.Any:
        """`attempt()` until it succeeds, fails for good, or no retry is left; the last failure carries this schedule.

        A failure that already carries a schedule was retried by a request of its own inside `attempt`, and is final.
        """
        while True:
            try:
                return attempt()
            except Exception as exc:  # pylint: disable=broad-exception-caught
                if hasattr(exc, "retry_schedule") or not (is_transient(exc) and self.wait_for_retry()):
                    if not hasattr(exc, "retry_schedule"):
                        exc.retry_schedule = self  # type: ignore[attr-defined]
                    raise


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt of the same request may succeed: 5xx and the SDK's retried 4xx, lost connections, timeouts.

    Certificate and name resolution failures are not: no retry mends them.
    """
    status = getattr(getattr(exc, "resp", None), "status", None)
    if status is not None:
        return int(status) >= 500 or int(status) in TRANSIENT_STATUSES
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    if isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError)):
        return True
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


if ARVADOS_IMPORT_ERROR is None:
    class BoundedRetryRequest(HttpRequest):
        """An SDK request whose retries follow RetrySchedule, so that one request ends within three api_timeouts.

        The SDK's own retries (googleapiclient's, unbounded in time) are switched off by building the client with
        num_retries=0; every request, those the SDK's helpers make included, is built from this class and is retried
        as often as the SDK would retry it: the larger of the call's and the client's num_retries.
        """

        def __init__(self, *args: t.Any, api_timeout: float = DEFAULT_API_TIMEOUT, client_num_retries: int = DEFAULT_NUM_RETRIES,
                     **kwargs: t.Any) -> None:
            super().__init__(*args, **kwargs)
            self.api_timeout = api_timeout
            self.client_num_retries = client_num_retries

        def execute(self, http: t.Any = None, num_retries: int = 0) -> t.Any:  # pylint: disable=arguments-differ
            schedule = RetrySchedule(max(num_retries, self.client_num_retries), self.api_timeout)
            return schedule.run(functools.partial(super().execute, http=http, num_retries=0))

    class LazyKeepAPIClient(SharedDiscoveryDocument, arvados.api.ThreadSafeAPIClient):
        """The SDK's thread-safe API client (what `arvados.api` returns) whose Keep client is built on first use.

        Building a Keep client reads the cluster's `config` (its default storage classes): a task that reads or writes
        no block, a no-op or a source cluster whose image the destination already holds, makes no such request. It
        takes ThreadSafeAPIClient's arguments, so a subclass of either is built the same way. Its threads' clients share
        one discovery document (SharedDiscoveryDocument).
        """

        def __init__(self, apiconfig: t.Mapping[str, str] | None = None, keep_params: t.Mapping[str, t.Any] | None = None,
                     api_params: t.Mapping[str, t.Any] | None = None, version: str | None = None) -> None:  # pylint: disable=super-init-not-called
            # ThreadSafeAPIClient.__init__ (arvados-python-client 3.2) but for its last step, which builds the Keep client.
            if apiconfig or apiconfig is None:
                self._api_kwargs = arvados.api.api_kwargs_from_config(version, apiconfig, **(api_params or {}))
            else:
                self._api_kwargs = arvados.api.normalize_api_kwargs(version, **(api_params or {}))
            self.api_token = self._api_kwargs["token"]
            self.request_id = self._api_kwargs.get("request_id")
            self.local = threading.local()
            self._keep_params = dict(keep_params or {})
            self._keep_lock = threading.Lock()
            self._keep: t.Any = None

        @property
        def keep(self) -> t.Any:
            with self._keep_lock:
                if self._keep is None:
                    self._keep = arvados.keep.KeepClient(api_client=self, **self._keep_params)
                return self._keep


def missing_library_message() -> str:
    """Which Python lacks the Arvados SDK, and how to install it there."""
    return (f"the arvados-python-client library is required, and {sys.executable} cannot import it ({ARVADOS_IMPORT_ERROR}): "
            f"install it there with `{sys.executable} -m pip install arvados-python-client`")


class ArvadosClient:
    """An SDK client bound to one set of connection options, with calls that fail in words a user can act on."""

    def __init__(self, options: ConnectionOptions, keep_params: dict[str, t.Any] | None = None) -> None:
        """`keep_params`: arguments of the Keep client (`arvados.keep.KeepClient`), built when a block is first read or written."""
        if ARVADOS_IMPORT_ERROR is not None:
            raise ArvadosClientError(missing_library_message())
        self.options = options
        # Projects found writable through this client: a client shared by several tasks checks each project once.
        self.writable_projects: set[str] = set()
        self._keep_lock = threading.Lock()
        self._keep_services_read = False
        schedule = RetrySchedule(options.num_retries, options.api_timeout)
        check_reachable(options)
        try:
            # Building the client fetches the discovery document, so a dead or refusing server fails in this one place.
            # What arvados.api("v1", ...) builds, but its Keep client, which is built when a block is first read or written,
            # and its threads' clients, built from the discovery document this thread reads here.
            self.api = LazyKeepAPIClient({}, keep_params, {
                "host": options.api_host, "token": options.api_token, "insecure": options.api_insecure, "cache": True,
                "request_id": None, "num_retries": 0, "timeout": options.api_timeout,
                "requestBuilder": functools.partial(BoundedRetryRequest, api_timeout=options.api_timeout,
                                                    client_num_retries=options.num_retries),
            }, "v1")
            self._discovery = schedule.run(lambda: self.api._rootDesc)  # pylint: disable=protected-access
        except REQUEST_ERRORS as exc:
            raise describe_error(exc, options) from None

    def execute(self, request: t.Any) -> t.Any:
        """Run one prepared SDK request with the configured retries."""
        try:
            return request.execute(num_retries=self.options.num_retries)
        except REQUEST_ERRORS as exc:
            raise describe_error(exc, self.options, self.cluster_id) from None

    def call(self, function: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run an SDK helper that makes its own requests (such as list_images_in_arv), translating its errors."""
        try:
            return function(*args, **kwargs)
        except REQUEST_ERRORS as exc:
            raise describe_error(exc, self.options, self.cluster_id) from None

    @property
    def discovery(self) -> dict[str, t.Any]:
        """The discovery document the client was built from (cluster id, image formats, replication)."""
        return self._discovery

    @property
    def cluster_id(self) -> str | None:
        return self._discovery.get("uuidPrefix")

    @property
    def keep(self) -> t.Any:
        """The Keep client, built on first use (which reads the cluster's config), its list of services read once first:
        threads that start writing at once would each read it."""
        keep = self.call(lambda: self.api.keep)
        with self._keep_lock:
            if not self._keep_services_read:
                self._keep_services_read = True
                with contextlib.suppress(*KEEP_SERVICES_ERRORS):  # met again, and reported, by the first Keep request
                    keep.build_services_list()
        return keep

    def docker_image_formats(self) -> list[str]:
        return list(self.discovery.get("dockerImageFormats") or [])

    def current_user(self) -> dict[str, t.Any]:
        return self.execute(self.api.users().current())
