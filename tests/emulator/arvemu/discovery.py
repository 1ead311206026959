"""The discovery document the Python SDK builds its client from, describing only what the emulator serves."""
from __future__ import annotations

import typing as t

from . import schema
from .cluster import Settings
from .schema import Resource

REVISION = "20250402"
SCOPES = ["https://api.arvados.org/auth/arvados", "https://api.arvados.org/auth/arvados.readonly"]
_SCHEMA_TYPES = {"string": "string", "text": "text", "datetime": "datetime", "integer": "integer", "boolean": "boolean",
                 "jsonb_hash": "Hash", "jsonb_array": "Array"}


def _param(kind: str, description: str, location: str = "query", required: bool = False,
           default: str | None = None) -> dict:
    param = {"type": kind, "description": description, "location": location, "required": required}
    if default is not None:
        param["default"] = default
    return param


UUID_PARAM = _param("string", "The UUID of the object.", location="path", required=True)
SELECT_PARAM = _param("array", "An array of names of attributes to return in the response.")
ENSURE_UNIQUE_NAME = _param(
    "boolean", "If the given name is already used by this owner, adjust the name to ensure uniqueness instead of returning an error.",
    default="false")
INCLUDE_TRASH = _param("boolean", "Include objects whose `is_trashed` attribute is true.", default="false")
LIST_PARAMS = {
    "filters": _param("array", "Filters to limit which objects are returned by their attributes."),
    "where": _param("object", "An object to limit which objects are returned by their attributes."),
    "order": _param("array", "An array of strings to set the order in which matching objects are returned."),
    "select": _param("array", "An array of names of attributes to return from each matching object."),
    "distinct": _param("boolean", "Return each distinct combination of selected attributes once.", default="false"),
    "limit": _param("integer", "The maximum number of objects to return in the result.", default="100"),
    "offset": _param("integer", "Return matching objects starting from this index.", default="0"),
    "count": _param("string", "Either \"exact\" (count matching objects) or \"none\".", default="exact"),
    "cluster_id": _param("string", "Cluster ID of a federated cluster to return objects from"),
    "bypass_federation": _param("boolean", "If true, do not return results from other clusters.", default="false"),
}
REPLACE_PARAMS = {
    "replace_files": _param("object", "Add, delete, and replace files and directories."),
    "replace_segments": _param("object", "Replace existing block segments in the collection with new segments."),
}


def _method(resource: Resource, name: str, path: str, http_method: str, parameters: dict,
            response: str | None, with_body: bool = False) -> dict:
    method = {
        "id": f"arvados.{resource.table}.{name}",
        "path": path,
        "httpMethod": http_method,
        "description": f"{name} {resource.class_name}",
        "parameters": parameters,
        "response": {"$ref": response} if response else {},
        "scopes": SCOPES,
    }
    if "uuid" in parameters:
        method["parameterOrder"] = ["uuid"]
    if with_body:
        method["request"] = {"required": True, "properties": {resource.resource_name: {"$ref": resource.class_name}}}
    return method


def _crud_methods(resource: Resource, verbs: t.Sequence[str]) -> dict:
    table = resource.table
    extra_get = {"include_trash": INCLUDE_TRASH} if resource in (schema.COLLECTION, schema.GROUP) else {}
    extra_list = dict(extra_get)
    if resource is schema.COLLECTION:
        extra_list["include_old_versions"] = _param("boolean", "Include past collection versions.", default="false")
    replace = REPLACE_PARAMS if resource is schema.COLLECTION else {}
    available = {
        "get": lambda: _method(resource, "get", f"{table}/{{uuid}}", "GET",
                               {"uuid": UUID_PARAM, "select": SELECT_PARAM, **extra_get}, resource.class_name),
        "list": lambda: _method(resource, "list", table, "GET", {**LIST_PARAMS, **extra_list}, resource.class_name + "List"),
        "create": lambda: _method(resource, "create", table, "POST", {
            "select": SELECT_PARAM, "ensure_unique_name": ENSURE_UNIQUE_NAME,
            "cluster_id": _param("string", "Cluster ID of a federated cluster where this object should be created."),
            **replace}, resource.class_name, with_body=True),
        "update": lambda: _method(resource, "update", f"{table}/{{uuid}}", "PUT",
                                  {"uuid": UUID_PARAM, "select": SELECT_PARAM, **replace}, resource.class_name, with_body=True),
        "delete": lambda: _method(resource, "delete", f"{table}/{{uuid}}", "DELETE", {"uuid": UUID_PARAM}, resource.class_name),
        "trash": lambda: _method(resource, "trash", f"{table}/{{uuid}}/trash", "POST", {"uuid": UUID_PARAM}, resource.class_name),
        "untrash": lambda: _method(resource, "untrash", f"{table}/{{uuid}}/untrash", "POST",
                                   {"uuid": UUID_PARAM, "ensure_unique_name": ENSURE_UNIQUE_NAME}, resource.class_name),
    }
    return {verb: available[verb]() for verb in verbs}


def _resources() -> dict:
    trashable = ("get", "list", "create", "update", "delete", "trash", "untrash")
    resources = {
        "collections": {"methods": _crud_methods(schema.COLLECTION, trashable)},
        "groups": {"methods": _crud_methods(schema.GROUP, trashable)},
        "links": {"methods": _crud_methods(schema.LINK, ("get", "list", "create", "update", "delete"))},
        "users": {"methods": _crud_methods(schema.USER, ("get", "list"))},
        "keep_services": {"methods": _crud_methods(schema.KEEP_SERVICE, ("get", "list"))},
        "api_client_authorizations": {"methods": _crud_methods(schema.API_CLIENT_AUTHORIZATION, ("list", "create", "delete"))},
        "configs": {"methods": {"get": {"id": "arvados.configs.get", "path": "config", "httpMethod": "GET",
                                        "description": "Get this cluster's public configuration settings.",
                                        "parameters": {}, "parameterOrder": [], "response": {}, "scopes": SCOPES}}},
        "vocabularies": {"methods": {"get": {"id": "arvados.vocabularies.get", "path": "vocabulary", "httpMethod": "GET",
                                             "description": "Get this cluster's configured vocabulary definition.",
                                             "parameters": {}, "parameterOrder": [], "response": {}, "scopes": SCOPES}}},
    }
    resources["users"]["methods"]["current"] = _method(schema.USER, "current", "users/current", "GET", {}, "User")
    resources["keep_services"]["methods"]["accessible"] = _method(
        schema.KEEP_SERVICE, "accessible", "keep_services/accessible", "GET", {}, "KeepServiceList")
    resources["api_client_authorizations"]["methods"]["current"] = _method(
        schema.API_CLIENT_AUTHORIZATION, "current", "api_client_authorizations/current", "GET", {}, "ApiClientAuthorization")
    return resources


def _schemas() -> dict:
    schemas: dict[str, dict] = {}
    for resource in schema.RESOURCES:
        properties = {name: {"type": _SCHEMA_TYPES[kind], "description": ""}
                      for name, kind in resource.columns.items() if name in resource.selectable}
        properties["etag"] = {"type": "string", "description": "Object cache version."}
        schemas[resource.class_name] = {"id": resource.class_name, "description": f"Arvados {resource.class_name}",
                                        "type": "object", "uuidPrefix": resource.infix, "properties": properties}
        schemas[resource.class_name + "List"] = {
            "id": resource.class_name + "List",
            "description": f"A list of {resource.class_name} objects.",
            "type": "object",
            "properties": {
                "kind": {"type": "string", "description": f"Object type. Always {resource.list_kind}.",
                         "default": resource.list_kind},
                "etag": {"type": "string", "description": "List cache version."},
                "items": {"type": "array", "description": f"An array of matching {resource.class_name} objects.",
                          "items": {"$ref": resource.class_name}},
            },
        }
    return schemas


def discovery_document(settings: Settings, root_url: str) -> dict:
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "arvados:v1",
        "name": "arvados",
        "version": "v1",
        "revision": REVISION,
        "source_version": "emulator",
        "sourceVersion": "emulator",
        "packageVersion": "3.2.1",
        "title": "Arvados API",
        "description": "The API to interact with Arvados.",
        "documentationLink": "http://doc.arvados.org/api/index.html",
        "defaultCollectionReplication": settings.default_replication,
        "protocol": "rest",
        "baseUrl": root_url + "arvados/v1/",
        "basePath": "/arvados/v1/",
        "rootUrl": root_url,
        "servicePath": "arvados/v1/",
        "batchPath": "batch",
        "uuidPrefix": settings.cluster_id,
        "defaultTrashLifetime": settings.trash_lifetime,
        "blobSignatureTtl": settings.signing_key.ttl,
        "maxRequestSize": 134217728,
        "maxItemsPerResponse": 1000,
        "dockerImageFormats": list(settings.docker_image_formats),
        "crunchLogUpdatePeriod": 1800,
        "crunchLogUpdateSize": 33554432,
        "remoteHosts": {},
        "remoteHostsViaDNS": False,
        "websocketUrl": "",
        "workbenchUrl": "",
        "workbench2Url": "",
        "keepWebServiceUrl": "",
        "parameters": {
            "alt": {"type": "string", "description": "Data format for the response.", "default": "json", "enum": ["json"],
                    "enumDescriptions": ["Responses with Content-Type of application/json"], "location": "query"},
            "fields": {"type": "string", "description": "Selector specifying which fields to include in a partial response.",
                       "location": "query"},
            "key": {"type": "string", "description": "API key.", "location": "query"},
            "oauth_token": {"type": "string", "description": "OAuth 2.0 token for the current user.", "location": "query"},
        },
        "auth": {"oauth2": {"scopes": {SCOPES[0]: {"description": "View and manage objects"},
                                       SCOPES[1]: {"description": "View objects"}}}},
        "schemas": _schemas(),
        "resources": _resources(),
    }


def public_config(settings: Settings, api_url: str) -> dict:
    """GET /arvados/v1/config: the parts of the exported cluster configuration clients read."""
    formats = {name: {} for name in settings.docker_image_formats}
    return {
        "ClusterID": settings.cluster_id,
        "API": {"MaxItemsPerResponse": 1000, "MaxRequestSize": 134217728},
        "Collections": {
            "BlobSigning": True,
            "BlobSigningTTL": f"{settings.signing_key.ttl // 3600}h0m0s",
            "DefaultReplication": settings.default_replication,
            "DefaultTrashLifetime": f"{settings.trash_lifetime // 3600}h0m0s",
            "ForwardSlashNameSubstitution": "",
            "ManagedProperties": {},
        },
        "Containers": {"SupportedDockerImageFormats": formats},
        "Services": {
            "Controller": {"ExternalURL": api_url},
            "Keepstore": {"InternalURLs": {f"http://{settings.keep_host}:{settings.keep_port}/": {}}},
        },
        "StorageClasses": {"default": {"Default": True, "Priority": 0}},
        "Volumes": {},
    }
