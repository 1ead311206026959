"""API errors with the status codes and message texts of the Arvados controller and API server."""
from __future__ import annotations

import http
import secrets
import time


class ApiError(Exception):
    """An error response. from_rails marks the messages the controller relays from the API server."""

    def __init__(self, status: int, *messages: str, from_rails: bool = True) -> None:
        super().__init__("; ".join(messages))
        self.status = status
        self.messages = list(messages) or [http.HTTPStatus(status).phrase]
        self.from_rails = from_rails

    def body(self, path: str, request_id: str) -> dict:
        if self.from_rails:
            prefix = f"//railsapi.internal{path}: {self.status} {http.HTTPStatus(self.status).phrase}: "
            errors = [f"{prefix}{message} ({request_id})" for message in self.messages]
        else:
            errors = [f"{message} ({request_id})" for message in self.messages]
        return {"errors": errors, "error_token": error_token()}


def error_token() -> str:
    return f"{int(time.time())}+{secrets.token_hex(4)}"


def inspect_exception(class_name: str, message: str | None = None) -> str:
    """Ruby's Exception#inspect, which the API server uses for errors without validation messages."""
    return f"#<{class_name}: {message if message is not None else class_name}>"


def not_found() -> ApiError:
    return ApiError(404, "Path not found")


def not_logged_in() -> ApiError:
    return ApiError(401, "Not logged in")


def permission_denied(*messages: str) -> ApiError:
    return ApiError(403, *(messages or (inspect_exception("ArvadosModel::PermissionDeniedError"),)))


def argument_error(message: str) -> ApiError:
    return ApiError(422, inspect_exception("ArgumentError", message))


def invalid(*messages: str) -> ApiError:
    """Validation failures: the model's full error messages."""
    return ApiError(422, *messages)


def invalid_state(message: str) -> ApiError:
    return ApiError(422, inspect_exception("ArvadosModel::InvalidStateTransitionError", message))


def unique_violation(index: str, owner_uuid: str, name: str) -> ApiError:
    detail = f"Key (owner_uuid, name)=({owner_uuid}, {name}) already exists."
    message = (f'PG::UniqueViolation: ERROR:  duplicate key value violates unique constraint "{index}"\n'
               f"DETAIL:  {detail}\n")
    return ApiError(422, inspect_exception("ActiveRecord::RecordNotUnique", message))


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, from_rails=False)
