# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The one Arvados client of the collection: connection options -> SDK client, and errors a user can act on.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import socket
import ssl
import typing as t
from dataclasses import dataclass

from ansible.module_utils.basic import env_fallback

try:
    import arvados
    import arvados.config
    import arvados.errors
    import httplib2
    ARVADOS_IMPORT_ERROR = None
    # What a request can fail with on the way to and from the server; anything else is a bug and stays loud.
    REQUEST_ERRORS: t.Tuple[t.Type[BaseException], ...] = (arvados.errors.ApiError, httplib2.HttpLib2Error, OSError)
except ImportError as exc:  # reported by the caller
    ARVADOS_IMPORT_ERROR = exc
    REQUEST_ERRORS = (OSError,)

DEFAULT_NUM_RETRIES = 5
DEFAULT_API_TIMEOUT = 20

ARVADOS_CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "api_host": {"type": "str", "fallback": (env_fallback, ["ARVADOS_API_HOST"])},
    "api_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["ARVADOS_API_TOKEN"])},
    "api_insecure": {"type": "bool", "fallback": (env_fallback, ["ARVADOS_API_HOST_INSECURE"])},
    "num_retries": {"type": "int", "default": DEFAULT_NUM_RETRIES},
    "api_timeout": {"type": "int", "default": DEFAULT_API_TIMEOUT},
}

TRUE_WORDS = frozenset(("1", "t", "true", "y", "yes", "on"))


class ArvadosClientError(Exception):
    """A failure talking to Arvados, worded for the user and free of secrets."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ConnectionOptions:
    api_host: str
    api_token: str = ""
    api_insecure: bool = False
    num_retries: int = DEFAULT_NUM_RETRIES
    api_timeout: int = DEFAULT_API_TIMEOUT

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


def resolve_connection(get: t.Callable[[str], t.Any]) -> ConnectionOptions:
    """Connection options from one source of option values (a module's params or a plugin's get_option).

    Values not set there come from the settings file, so the collection follows the Arvados tools.
    """
    api_host = get("api_host") or _settings_file_value("ARVADOS_API_HOST")
    api_token = get("api_token") or _settings_file_value("ARVADOS_API_TOKEN")
    insecure = get("api_insecure")
    if insecure is None:
        insecure = _settings_file_value("ARVADOS_API_HOST_INSECURE")
    if not api_host:
        raise ArvadosClientError("no Arvados API host: set api_host, or ARVADOS_API_HOST in the environment of the host that runs this")
    if not api_token:
        raise ArvadosClientError("no Arvados API token: set api_token, or ARVADOS_API_TOKEN in the environment of the host that runs this")
    return ConnectionOptions(
        api_host=str(api_host).strip().rstrip("/"),
        api_token=str(api_token).strip(),
        api_insecure=_as_bool(insecure),
        num_retries=int(get("num_retries") if get("num_retries") is not None else DEFAULT_NUM_RETRIES),
        api_timeout=int(get("api_timeout") or DEFAULT_API_TIMEOUT),
    )


def connection_from_module(module: t.Any) -> ConnectionOptions:
    return resolve_connection(module.params.get)


def connection_from_plugin(plugin: t.Any) -> ConnectionOptions:
    return resolve_connection(plugin.get_option)


def _host_and_port(api_host: str) -> tuple[str, int]:
    host, _sep, port = api_host.rpartition(":")
    if host and port.isdigit():
        return host.strip("[]"), int(port)
    return api_host, 443


def check_reachable(options: ConnectionOptions) -> None:
    """Fail at once on what no retry can mend: an unknown host name or an untrusted certificate.

    The SDK retries every connection failure with a doubling back-off, which would hide these for minutes.
    """
    host, port = _host_and_port(options.api_host)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ArvadosClientError(f"cannot resolve the API host name {host!r} ({exc.strerror}): check api_host / ARVADOS_API_HOST") from None
    if options.api_insecure:
        return
    context = ssl.create_default_context()
    try:
        with socket.create_connection((host, port), timeout=options.api_timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                pass
    except ssl.SSLCertVerificationError as exc:
        raise ArvadosClientError(
            f"the TLS certificate of {options.api_host} is not trusted ({exc.verify_message}): install the cluster's CA certificate, "
            "or set api_insecure: true (ARVADOS_API_HOST_INSECURE=1) for a test cluster with a self-signed certificate"
        ) from None
    except OSError:
        return  # refused or timed out: left to the SDK's retries, which end in a clear error too


def describe_error(exc: BaseException, options: ConnectionOptions) -> ArvadosClientError:
    """An SDK or transport exception as a message that names the cause and the fix, without the token."""
    status = getattr(getattr(exc, "resp", None), "status", None)
    reason = _api_error_reason(exc) if status else str(exc)
    if status == 401:
        message = f"the API server {options.api_host} refused the token (401: {reason}): check api_token / ARVADOS_API_TOKEN, it may have expired"
    elif status == 403:
        message = f"permission denied by {options.api_host} (403: {reason})"
    elif status == 404:
        message = f"not found on {options.api_host} (404: {reason})"
    elif status:
        message = f"the API server {options.api_host} answered {status}: {reason}"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        message = f"the API server {options.api_host} did not answer within api_timeout ({options.api_timeout} s) after {options.num_retries} retries"
    else:
        message = f"cannot talk to the API server {options.api_host}: {type(exc).__name__}: {reason}"
    return ArvadosClientError(redact(message, options), status=status)


def _api_error_reason(exc: BaseException) -> str:
    reason = getattr(exc, "_get_reason", None)
    return str(reason() if callable(reason) else exc)


def redact(text: str, options: ConnectionOptions) -> str:
    """The text with the token, and its secret part alone, replaced."""
    secret = options.api_token.rsplit("/", 1)[-1]
    for value in (options.api_token, secret):
        if value and len(value) >= 8:
            text = text.replace(value, "********")
    return text


class ArvadosClient:
    """An SDK client bound to one set of connection options, with calls that fail in words a user can act on."""

    def __init__(self, options: ConnectionOptions) -> None:
        if ARVADOS_IMPORT_ERROR is not None:
            raise ArvadosClientError(f"the arvados-python-client library is required: {ARVADOS_IMPORT_ERROR}")
        self.options = options
        check_reachable(options)
        try:
            self.api = arvados.api(
                "v1", host=options.api_host, token=options.api_token, insecure=options.api_insecure,
                num_retries=options.num_retries, timeout=options.api_timeout,
            )
            # The discovery document is fetched here, so a dead or refusing server fails in this one place.
            self._discovery = self.api._rootDesc  # pylint: disable=protected-access
        except REQUEST_ERRORS as exc:
            raise describe_error(exc, options) from None

    def execute(self, request: t.Any) -> t.Any:
        """Run one prepared SDK request with the configured retries."""
        try:
            return request.execute(num_retries=self.options.num_retries)
        except REQUEST_ERRORS as exc:
            raise describe_error(exc, self.options) from None

    def call(self, function: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run an SDK helper that makes its own requests (such as list_images_in_arv), translating its errors."""
        try:
            return function(*args, **kwargs)
        except REQUEST_ERRORS as exc:
            raise describe_error(exc, self.options) from None

    @property
    def discovery(self) -> dict[str, t.Any]:
        """The discovery document the client was built from (cluster id, image formats, replication)."""
        return self._discovery

    @property
    def keep(self) -> t.Any:
        return self.api.keep

    def docker_image_formats(self) -> list[str]:
        return list(self.discovery.get("dockerImageFormats") or [])

    def current_user(self) -> dict[str, t.Any]:
        return self.execute(self.api.users().current())
