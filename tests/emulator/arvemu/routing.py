"""The API server's HTTP surface: werkzeug routing from paths to resource services, JSON in and out."""
from __future__ import annotations

import json
import logging
import secrets
import typing as t

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import errors
from .admin import AdminEndpoint
from .cluster import Caller, Cluster
from .collections import CollectionService
from .discovery import discovery_document, public_config
from .groups import GroupService
from .links import LinkService
from .params import bearer_token, load_params
from .traffic import TrafficControl
from .users import KeepServiceService, TokenService, UserService

LOG = logging.getLogger("arvemu.api")
Handler = t.Callable[[Caller, dict, dict], dict]
_REQUEST_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
MAX_REQUEST_SIZE = 128 * 1024 * 1024


class ApiRequest(Request):
    """Long queries arrive as form bodies (method override); allow them as large as the real controller does."""
    max_form_memory_size = MAX_REQUEST_SIZE
    max_form_parts = 100000


def new_request_id() -> str:
    return "req-" + "".join(secrets.choice(_REQUEST_ID_ALPHABET) for position in range(20))


def json_response(payload: t.Any, status: int = 200, request_id: str = "") -> Response:
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
    response = Response(body, status=status, content_type="application/json")
    response.headers["Access-Control-Allow-Origin"] = "*"
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response


class ApiApp:
    """The WSGI application for discovery, /arvados/v1/ and the admin endpoint."""

    def __init__(self, cluster: Cluster, control: TrafficControl) -> None:
        self.cluster = cluster
        self.users = UserService(cluster)
        self.groups = GroupService(cluster)
        self.collections = CollectionService(cluster)
        self.links = LinkService(cluster)
        self.tokens = TokenService(cluster)
        self.keep_services = KeepServiceService(cluster)
        self.admin = AdminEndpoint(cluster, control)
        self.handlers: dict[str, Handler] = {}
        self.admin_handlers: dict[str, t.Callable[[Caller, dict], dict]] = {}
        self.url_map = Map(self.rules(), strict_slashes=False, merge_slashes=False)

    def rules(self) -> list[Rule]:
        rules = [
            Rule("/discovery/v1/apis/arvados/v1/rest", endpoint="discovery", methods=["GET"]),
            Rule("/arvados/v1/config", endpoint="config", methods=["GET"]),
            Rule("/arvados/v1/vocabulary", endpoint="vocabulary", methods=["GET"]),
        ]
        rules += self.api_rules()
        for index, (path, methods, handler) in enumerate(self.admin.routes()):
            endpoint = f"admin{index}"
            self.admin_handlers[endpoint] = handler
            rules.append(Rule(path, endpoint=endpoint, methods=list(methods)))
        return rules

    def api_rules(self) -> list[Rule]:
        base = "/arvados/v1"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/users/current", lambda caller, args, params: self.users.current(caller, params)),
            ("GET", "/users", lambda caller, args, params: self.users.index(caller, params)),
            ("GET", "/users/<uuid>", lambda caller, args, params: self.users.show(caller, args["uuid"], params)),
            ("GET", "/keep_services/accessible", lambda caller, args, params: self.keep_services.accessible(caller, params)),
            ("GET", "/keep_services", lambda caller, args, params: self.keep_services.index(caller, params)),
            ("GET", "/keep_services/<uuid>", lambda caller, args, params: self.keep_services.show(caller, args["uuid"], params)),
            ("GET", "/api_client_authorizations/current", lambda caller, args, params: self.tokens.current(caller, params)),
            ("GET", "/api_client_authorizations", lambda caller, args, params: self.tokens.index(caller, params)),
            ("POST", "/api_client_authorizations", lambda caller, args, params: self.tokens.create(caller, params)),
            ("DELETE", "/api_client_authorizations/<uuid>",
             lambda caller, args, params: self.tokens.delete(caller, args["uuid"], params)),
            ("GET", "/links", lambda caller, args, params: self.links.index(caller, params)),
            ("POST", "/links", lambda caller, args, params: self.links.create(caller, params)),
            ("GET", "/links/<uuid>", lambda caller, args, params: self.links.show(caller, args["uuid"], params)),
            ("PUT", "/links/<uuid>", lambda caller, args, params: self.links.update(caller, args["uuid"], params)),
            ("DELETE", "/links/<uuid>", lambda caller, args, params: self.links.delete(caller, args["uuid"], params)),
        ]
        for name, service in (("collections", self.collections), ("groups", self.groups)):
            table += self.trashable_routes(name, service)
        rules = []
        for index, (method, path, handler) in enumerate(table):
            endpoint = f"api{index}"
            self.handlers[endpoint] = handler
            methods = [method, "PATCH"] if method == "PUT" else [method]
            rules.append(Rule(base + path, endpoint=endpoint, methods=methods))
        return rules

    @staticmethod
    def trashable_routes(name: str, service: t.Any) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", f"/{name}", lambda caller, args, params: service.index(caller, params)),
            ("POST", f"/{name}", lambda caller, args, params: service.create(caller, params)),
            ("GET", f"/{name}/<uuid>", lambda caller, args, params: service.show(caller, args["uuid"], params)),
            ("PUT", f"/{name}/<uuid>", lambda caller, args, params: service.update(caller, args["uuid"], params)),
            ("DELETE", f"/{name}/<uuid>", lambda caller, args, params: service.trash(caller, args["uuid"], params, True)),
            ("POST", f"/{name}/<uuid>/trash", lambda caller, args, params: service.trash(caller, args["uuid"], params, False)),
            ("POST", f"/{name}/<uuid>/untrash", lambda caller, args, params: service.untrash(caller, args["uuid"], params)),
        ]

    def __call__(self, environ: dict, start_response: t.Callable) -> t.Iterable[bytes]:
        request = ApiRequest(environ)
        request_id = request.headers.get("X-Request-Id") or new_request_id()
        try:
            response = self.dispatch(request, request_id)
        except errors.ApiError as failure:
            response = json_response(failure.body(request.path, request_id), failure.status, request_id)
        except Exception as failure:
            LOG.exception("request %s %s failed", request.method, request.path)
            failure_body = errors.ApiError(500, f"{type(failure).__name__}: {failure}", from_rails=False)
            response = json_response(failure_body.body(request.path, request_id), 500, request_id)
        return response(environ, start_response)

    def dispatch(self, request: Request, request_id: str) -> Response:
        method = self.effective_method(request)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match(request.path, method=method)
        except HTTPException:
            raise errors.not_found()
        if endpoint == "discovery":
            response = json_response(discovery_document(self.cluster.settings, request.host_url), request_id=request_id)
            response.headers["Cache-Control"] = "no-store"
            return response
        if endpoint in ("config", "vocabulary"):
            payload = public_config(self.cluster.settings, request.host_url) if endpoint == "config" else {}
            return json_response(payload, request_id=request_id)
        caller = self.cluster.caller(request_id, bearer_token(request))
        if endpoint in self.admin_handlers:
            self.admin.require_admin(caller)
            body = request.get_json(silent=True) if request.content_length else None
            return json_response(self.admin_handlers[endpoint](caller, body if isinstance(body, dict) else {}),
                                 request_id=request_id)
        if caller.user is None:
            raise errors.not_logged_in()
        params = self.request_params(request, endpoint)
        return json_response(self.handlers[endpoint](caller, arguments, params), request_id=request_id)

    @staticmethod
    def effective_method(request: Request) -> str:
        if request.method != "POST":
            return request.method
        override = request.headers.get("X-Http-Method-Override")
        if not override and request.mimetype == "application/x-www-form-urlencoded":
            override = request.form.get("_method")
        return override.upper() if override else "POST"

    def request_params(self, request: Request, endpoint: str) -> dict:
        form_items = list(request.args.items(multi=True))
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form_items += [(key, value) for key, value in request.form.items(multi=True) if key != "_method"]
        json_body = None
        if request.mimetype in ("application/json", "") and request.content_length:
            try:
                json_body = json.loads(request.get_data(cache=False) or b"{}")
            except ValueError as failure:
                raise errors.bad_request(str(failure))
            if not isinstance(json_body, dict):
                raise errors.bad_request("json: cannot unmarshal request body into an object")
        return load_params(form_items, json_body, self.attrs_key(request.path))

    @staticmethod
    def attrs_key(path: str) -> str | None:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "arvados":
            return None
        return {"collections": "collection", "groups": "group", "links": "link", "users": "user",
                "api_client_authorizations": "api_client_authorization"}.get(parts[2])
