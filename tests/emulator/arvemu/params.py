"""Request parameters as the controller reads them: query, form and JSON body, with its type guessing."""
from __future__ import annotations

import json
import typing as t

from werkzeug.wrappers import Request

from . import errors

INT_PARAMS = frozenset({"limit", "offset"})
BOOL_PARAMS = frozenset({
    "distinct", "ensure_unique_name", "include_trash", "include_old_versions", "redirect_to_new_user",
    "send_notification_email", "bypass_federation", "recursive", "exclude_home_project", "no_forward"})


def string_to_bool(text: str) -> bool:
    return text not in ("", "false", "0")


def guess_and_parse(key: str, value: str) -> t.Any:
    """lib/controller/router/request.go guessAndParse: ints, bools, null, and JSON-looking values."""
    if key in INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    if key in BOOL_PARAMS:
        return string_to_bool(value)
    if value in ("null", ""):
        return None
    if value.startswith(("[", "{", '"')):
        try:
            parsed = json.loads(value)
        except ValueError as failure:
            raise errors.bad_request(str(failure))
        expected = {"[": list, "{": dict, '"': str}[value[0]]
        if not isinstance(parsed, expected):
            raise errors.bad_request(f"cannot decode {key}")
        return parsed
    return value


def load_params(form_items: t.Iterable[tuple[str, str]], json_body: t.Mapping[str, t.Any] | None,
                attrs_key: str | None) -> dict[str, t.Any]:
    """Merges form values and a JSON body; top-level body attributes stand in for a missing wrapper object."""
    params: dict[str, t.Any] = {}
    for key, value in form_items:
        params[key] = guess_and_parse(key, value)
    if json_body is not None:
        decoded = {}
        for key, value in json_body.items():
            decoded[key] = guess_and_parse(key, value) if isinstance(value, str) else value
        params.update(decoded)
        if attrs_key and params.get(attrs_key) is None:
            params[attrs_key] = decoded
    if attrs_key and attrs_key in params:
        params["attrs"] = params.pop(attrs_key)
    for key in ("include", "order"):
        if isinstance(params.get(key), str):
            if params[key] == "":
                del params[key]
            else:
                params[key] = params[key].split(",")
    return params


def bool_param(params: t.Mapping[str, t.Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return string_to_bool(value)
    return bool(value)


def bearer_token(request: Request) -> str | None:
    """The API token of an Authorization header, as the controller and keepstore both accept it."""
    header = request.headers.get("Authorization", "")
    for scheme in ("Bearer ", "OAuth2 "):
        if header.startswith(scheme):
            return header[len(scheme):].strip() or None
    return None


def attrs_param(params: t.Mapping[str, t.Any], resource_name: str) -> dict[str, t.Any]:
    attrs = params.get("attrs")
    if attrs is None:
        return {}
    if not isinstance(attrs, dict):
        message = f"No {resource_name}"
        if "_" in resource_name:
            camel = resource_name.split("_")[0] + "".join(part.title() for part in resource_name.split("_")[1:])
            message += f" (or {camel})"
        raise errors.argument_error(message + " hash provided with request")
    return dict(attrs)
