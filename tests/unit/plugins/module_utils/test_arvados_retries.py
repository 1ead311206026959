# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The client's retry policy: which failures are retried, how long it waits, and when it gives up, on a fake clock."""

from __future__ import annotations

import socket
import ssl

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import (
    ConnectionOptions,
    RetrySchedule,
    describe_error,
    is_transient,
    token_cluster_id,
)

API_TIMEOUT = 20


class FakeClock:
    """Time that only moves when the schedule sleeps or an attempt takes time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StatusError(Exception):
    """An API answer with an HTTP status, shaped as the SDK's errors are (`resp.status`)."""

    def __init__(self, status: int, reason: str = "failed") -> None:
        super().__init__(reason)
        self.resp = type("Response", (), {"status": status})()


def schedule(clock: FakeClock, num_retries: int = 5, rand: float = 0.5) -> RetrySchedule:
    return RetrySchedule(num_retries, API_TIMEOUT, clock=clock, sleep=clock.sleep, rand=lambda: rand)


def failing(clock: FakeClock, errors: list[BaseException], attempt_seconds: float = 0.0):
    """An attempt that raises the given errors in turn, then succeeds; each attempt takes `attempt_seconds`."""
    calls = []

    def attempt() -> str:
        calls.append(clock.now)
        clock.now += attempt_seconds
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"
    return attempt, calls


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409, 423, 429])
def test_temporary_answers_are_retried(status: int) -> None:
    assert is_transient(StatusError(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_final_answers_are_not(status: int) -> None:
    assert not is_transient(StatusError(status))


@pytest.mark.parametrize("error, transient", [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (socket.timeout("timed out"), True),
    (TimeoutError("timed out"), True),
    (ssl.SSLCertVerificationError("certificate verify failed"), False),
    (socket.gaierror(-2, "Name or service not known"), False),
    (ValueError("a bug"), False),
])
def test_transport_failures(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_back_off_doubles_and_stops_at_num_retries() -> None:
    clock = FakeClock()
    attempt, calls = failing(clock, [StatusError(503)] * 9)
    with pytest.raises(StatusError) as raised:
        schedule(clock, num_retries=3).run(attempt)
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert len(calls) == 4
    assert raised.value.retry_schedule.retries == 3


def test_a_burst_within_the_budget_is_survived() -> None:
    clock = FakeClock()
    attempt, calls = failing(clock, [StatusError(503), StatusError(423)])
    assert schedule(clock).run(attempt) == "done"
    assert len(calls) == 3


def test_retries_start_only_within_two_api_timeouts() -> None:
    """A server that never answers: attempts of api_timeout each, and the whole request ends within three."""
    clock = FakeClock()
    start = clock.now
    attempt, calls = failing(clock, [socket.timeout("timed out")] * 9, attempt_seconds=API_TIMEOUT)
    with pytest.raises(socket.timeout):
        schedule(clock, rand=1.0).run(attempt)
    assert len(calls) == 2
    assert clock.now - start <= 3 * API_TIMEOUT


def test_refused_connections_give_up_within_the_window() -> None:
    """Every attempt fails at once; the largest waits would pass the window, so the last retries are not made."""
    clock = FakeClock()
    start = clock.now
    attempt, calls = failing(clock, [ConnectionRefusedError(111, "Connection refused")] * 9)
    with pytest.raises(ConnectionRefusedError):
        schedule(clock, num_retries=10, rand=1.0).run(attempt)
    assert clock.sleeps == [2.0, 4.0, 8.0, 16.0]
    assert clock.now - start < 2 * API_TIMEOUT
    assert len(calls) == 5


def test_final_failures_are_not_retried() -> None:
    clock = FakeClock()
    attempt, calls = failing(clock, [StatusError(401)])
    with pytest.raises(StatusError):
        schedule(clock).run(attempt)
    assert len(calls) == 1 and clock.sleeps == []


def test_a_failure_retried_by_an_inner_request_is_final() -> None:
    """Building the client runs requests that retry on their own; their last failure is not retried again."""
    clock = FakeClock()
    inner = StatusError(503)
    inner.retry_schedule = schedule(clock)
    attempt, calls = failing(clock, [inner])
    with pytest.raises(StatusError) as raised:
        schedule(clock).run(attempt)
    assert len(calls) == 1 and raised.value.retry_schedule is inner.retry_schedule


def test_messages_tell_how_long_retries_went_on_and_hide_the_token() -> None:
    options = ConnectionOptions(api_host="api.example:443", api_token="v2/zzzzz-gj3su-012345678901234/s3cr3ts3cr3ts3cr3t")
    clock = FakeClock()
    attempt, _calls = failing(clock, [ConnectionRefusedError(111, "[req-abc123] Connection refused s3cr3ts3cr3ts3cr3t")] * 9)
    with pytest.raises(ConnectionRefusedError) as raised:
        schedule(clock, num_retries=2).run(attempt)
    message = str(describe_error(raised.value, options))
    assert message.startswith("cannot connect to the API server api.example:443 (Connection refused ********); gave up after 2 retries in 3 s")
    assert "check api_host / ARVADOS_API_HOST" in message and "req-" not in message


def test_a_token_of_another_cluster_is_named_as_such() -> None:
    options = ConnectionOptions(api_host="api.example:443", api_token="v2/yyyyy-gj3su-012345678901234/s3cr3ts3cr3ts3cr3t")
    message = str(describe_error(StatusError(401, "Not logged in"), options, cluster_id="zzzzz"))
    assert "the token was issued by cluster yyyyy, and api.example:443 is cluster zzzzz" in message
    assert "expired" not in message and "s3cr3t" not in message


@pytest.mark.parametrize("token, cluster_id", [
    ("v2/zzzzz-gj3su-012345678901234/s3cr3ts3cr3ts3cr3t", "zzzzz"),  # this cluster's own: may have expired
    ("s3cr3ts3cr3ts3cr3t", None),  # a v1 token does not say which cluster issued it
])
def test_other_refused_tokens_may_have_expired(token: str, cluster_id: str | None) -> None:
    assert token_cluster_id(token) == cluster_id
    options = ConnectionOptions(api_host="api.example:443", api_token=token)
    assert str(describe_error(StatusError(401, "Not logged in"), options, cluster_id="zzzzz")).endswith(
        "check api_token / ARVADOS_API_TOKEN, it may have expired")


@pytest.mark.parametrize("reason, said", [
    ("//railsapi.internal/arvados/v1/groups/zzzzz-j7d0g-012345678901234: 404 Not Found: Path not found (req-abc)",
     "Path not found (req-abc)"),
    ("//railsapi.internal/arvados/v1/links: 422 Unprocessable Entity: #<ArgumentError: bad> (req-a); "
     "//railsapi.internal/arvados/v1/links: 422 Unprocessable Entity: other (req-a)", "#<ArgumentError: bad> (req-a); other (req-a)"),
    ("Not logged in (req-abc)", "Not logged in (req-abc)"),
])
def test_the_api_servers_internal_address_is_left_out(reason: str, said: str) -> None:
    message = str(describe_error(StatusError(404, reason), ConnectionOptions(api_host="api.example:443")))
    assert message == f"not found on api.example:443 (404: {said})"
