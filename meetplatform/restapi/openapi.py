"""The OpenAPI 3.1 document, generated from the route table and the resource types.

Nothing here is written by hand per endpoint: paths, parameters, bodies, responses and
security come from :data:`meetplatform.restapi.routes.ROUTES` and the
:class:`~meetplatform.restapi.schema.ResourceType` objects that validate requests, so the
document describes exactly what the code does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meetplatform import __version__
from meetplatform.restapi.auth import SCOPE_DESCRIPTIONS, SIGNATURE_SCHEME
from meetplatform.restapi.jsonapi import JSON_TYPE, MEDIA_TYPE, PRETTY_VALUES, status_title
from meetplatform.restapi.routes import Route, path_params
from meetplatform.restapi.schema import ResourceType

DESCRIPTION = f"""\
The JSON:API of meetplatform for client applications: your space, its rooms, invitations
(user tokens), the live participants of a room, and meetings as the BigBlueButton API
knows them.

* Media type `{MEDIA_TYPE}` (`application/json` is accepted for request bodies).
  Members are camelCase; times are ISO 8601 in UTC with milliseconds.
* Responses are pretty-printed unless `?pretty=false`; gzip-compressed when the request
  has `Accept-Encoding: gzip` (except responses that carry a secret).
* `PATCH`, `PUT` and `DELETE` may be sent as `POST` with `X-HTTP-Method-Override` or
  `?_method=`. Only on `POST`.
* Lists use cursor pagination: `page[size]` (1-100) and `page[after]` from `links.next`.
* No cookies, no sessions, no redirects: calls that send a user somewhere return the URL.
* Errors are JSON:API error objects (`status`, `code`, `title`, `detail`, `source`).
* Authenticate with an access token from `POST /oauth/token` (client credentials), or
  sign each request with `{SIGNATURE_SCHEME}` (usable over plain HTTP), or, for the
  user-authorized calls, with the access token an invitation's activation returned.
"""

SIGNATURE_DESCRIPTION = f"""\
`Authorization: {SIGNATURE_SCHEME} clientId=<id>, timestamp=<unix seconds>, nonce=<8-128
chars>, signature=<hex>` where signature = hex(HMAC-SHA256(key, string)), key =
HMAC-SHA256(key=client_secret, msg="meetplatform request signing v1") and string is the
lines `{SIGNATURE_SCHEME}`, METHOD, path, query, timestamp, nonce, hex(SHA-256(body))
joined by `\\n`. METHOD is the method executed (a method override's value). path is the
request path from `/api/v2/` on, percent-decoded and re-encoded so that only
`A-Z a-z 0-9 - _ . ~ /` stay literal (`%XX` upper case). query is canonical, not as sent:
the parameters percent-decoded, sorted by name and then value, each name and value
re-encoded like the path (`/` encoded too) and joined as `name=value` with `&` (empty
without a query). Timestamps must be within 300 s of the server's clock; each nonce is
accepted once."""


def schema_name(rtype: ResourceType) -> str:
    name = rtype.type.removesuffix("s")
    return name[0].upper() + name[1:]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _links(*required: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": ["string", "null"]},
            "required": list(required)}


JSONAPI_OBJECT = {"type": "object", "properties": {"version": {"type": "string"}}}


def _type_schemas(rtype: ResourceType, schemas: dict[str, Any]) -> None:
    name = schema_name(rtype)
    relationship = {
        "type": "object",
        "properties": {
            "data": {"anyOf": [
                {"type": "null"},
                {"type": "object", "properties": {"type": {"type": "string"},
                                                  "id": {"type": "string"}},
                 "required": ["type", "id"]}]},
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    for variant, include_once in (("", False), ("Created", True)):
        if include_once and not any(a.once for a in rtype.attributes.values()):
            continue
        schemas[f"{name}{variant}Attributes"] = rtype.attributes_schema(
            include_once=include_once)
        schemas[f"{name}{variant}Resource"] = {
            "type": "object",
            "description": rtype.description,
            "properties": {
                "type": {"const": rtype.type},
                "id": {"type": "string", "examples": [rtype.id_example]}
                if rtype.id_example else {"type": "string"},
                "attributes": _ref(f"{name}{variant}Attributes"),
                "relationships": {"type": "object",
                                  "properties": {r: relationship for r in rtype.relationships},
                                  "additionalProperties": False},
                "links": {"type": "object", "additionalProperties": {"type": "string"}},
                "meta": {"type": "object"},
            },
            "required": ["type", "id", "attributes"],
            "additionalProperties": False,
        }
        schemas[f"{name}{variant}Document"] = {
            "type": "object",
            "properties": {"data": _ref(f"{name}{variant}Resource"),
                           "links": {"type": "object"}, "meta": {"type": "object"},
                           "jsonapi": JSONAPI_OBJECT},
            "required": ["data"],
            "additionalProperties": False,
        }
    schemas[f"{name}CollectionDocument"] = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref(f"{name}Resource")},
            "links": {"type": "object",
                      "properties": {"self": {"type": "string"},
                                     "next": {"type": ["string", "null"]}},
                      "required": ["self", "next"]},
            "meta": {"type": "object"},
            "jsonapi": JSONAPI_OBJECT,
        },
        "required": ["data", "links"],
        "additionalProperties": False,
    }


ERROR_OBJECT = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "code": {"type": "string"},
        "title": {"type": "string"},
        "detail": {"type": "string"},
        "source": {"type": "object", "properties": {
            "pointer": {"type": "string"}, "parameter": {"type": "string"},
            "header": {"type": "string"}}, "additionalProperties": False},
        "meta": {"type": "object"},
    },
    "required": ["status", "code", "title", "detail"],
    "additionalProperties": False,
}


def build_document(routes: Iterable[Route], types: Iterable[ResourceType],
                   server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` served at ``server_url``."""
    routes = list(routes)
    schemas: dict[str, Any] = {
        "ErrorObject": ERROR_OBJECT,
        "ErrorDocument": {
            "type": "object",
            "properties": {"errors": {"type": "array", "items": _ref("ErrorObject"),
                                      "minItems": 1},
                           "jsonapi": JSONAPI_OBJECT},
            "required": ["errors"],
            "additionalProperties": False,
        },
        "OAuthErrorDocument": {
            "type": "object",
            "description": "RFC 6749 §5.2 error members, plus the JSON:API errors array",
            "properties": {"error": {"type": "string"},
                           "error_description": {"type": "string"},
                           "errors": {"type": "array", "items": _ref("ErrorObject")},
                           "jsonapi": JSONAPI_OBJECT},
            "required": ["errors"],
            "additionalProperties": False,
        },
    }
    for rtype in types:
        _type_schemas(rtype, schemas)

    paths: dict[str, dict[str, Any]] = {}
    tags: list[str] = []
    for route in routes:
        if route.tag not in tags:
            tags.append(route.tag)
        operation = _operation(route, schemas)
        paths.setdefault(route.path, {})[route.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        # info.version is the document's version: the package's, a plain PEP 440 version
        # that client generators can use as their package version (the API's own major
        # version is in every path, /api/v2, and in x-api-version).
        "info": {"title": "meetplatform JSON:API", "version": __version__,
                 "x-api-version": "2", "description": DESCRIPTION},
        "servers": [{"url": server_url}],
        "tags": [{"name": t} for t in tags],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "clientToken": {
                    "type": "oauth2",
                    "description": "access token from the client credentials grant (mpat_...)",
                    "flows": {"clientCredentials": {"tokenUrl": f"{server_url}/oauth/token",
                                                    "scopes": dict(SCOPE_DESCRIPTIONS)}},
                },
                "userToken": {"type": "http", "scheme": "bearer",
                              "description": "user-level access token returned by an "
                                             "invitation's activation (mpua_...)"},
                "requestSignature": {"type": "apiKey", "in": "header", "name": "Authorization",
                                     "description": SIGNATURE_DESCRIPTION},
                "clientBasic": {"type": "http", "scheme": "basic",
                                "description": "client id and client secret"},
            },
            "parameters": {
                "pretty": {"name": "pretty", "in": "query", "required": False,
                           "description": "false (or 0, no): compact JSON "
                                          "(default: indented)",
                           "schema": {"type": "string", "enum": list(PRETTY_VALUES)}},
            },
        },
    }


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        operation["description"] = route.description
    if route.auth == "public":
        operation["security"] = []
    elif route.auth == "oauthClient":
        operation["security"] = [{"clientBasic": []}, {}]
        if route.path != "/oauth/token":
            operation["security"][1:1] = [{"clientToken": []}, {"requestSignature": []}]
    else:
        scope = [route.scope] if route.scope else []
        security: list[dict[str, list[str]]] = [{"clientToken": scope},
                                                {"requestSignature": []}]
        if route.auth == "any":
            security.append({"userToken": []})
        operation["security"] = security
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_params(route.path)]
    for param in route.query:
        parameters.append({"name": param.name, "in": "query", "required": False,
                           "description": param.description,
                           "schema": param.schema.json_schema()})
    parameters.append({"$ref": "#/components/parameters/pretty"})
    operation["parameters"] = parameters

    body = route.body
    if body is not None:
        if body.form is not None:
            schema = body.form.json_schema()
            content = {"application/x-www-form-urlencoded": {"schema": schema},
                       JSON_TYPE: {"schema": schema}}
        else:
            assert body.rtype is not None
            name = f"{schema_name(body.rtype)}{body.mode.capitalize()}Request"
            request_schema = body.rtype.request_schema(body.mode)
            if body.require:
                name = f"{route.name[0].upper()}{route.name[1:]}Request"
                data = request_schema["properties"]["data"]
                data["properties"]["attributes"]["required"] = sorted(
                    set(data["properties"]["attributes"].get("required", []))
                    | set(body.require))
                if "attributes" not in data["required"]:
                    data["required"].append("attributes")
            schemas[name] = request_schema
            content = {MEDIA_TYPE: {"schema": _ref(name)}, JSON_TYPE: {"schema": _ref(name)}}
        operation["requestBody"] = {"required": body.required, "content": content}

    responses: dict[str, Any] = {}
    for status in route.success:
        responses[str(status)] = _success(route, status)
    error_schema = _ref("OAuthErrorDocument" if route.media_type == JSON_TYPE
                        else "ErrorDocument")
    for status in route.errors:
        response: dict[str, Any] = {
            "description": status_title(status),
            "content": {route.media_type: {"schema": error_schema}},
        }
        if status == 429:
            response["headers"] = {"Retry-After": {
                "description": "seconds to wait", "schema": {"type": "integer"}}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses[str(status)] = response
    operation["responses"] = responses
    return operation


def _success(route: Route, status: int) -> dict[str, Any]:
    output = route.output
    out: dict[str, Any] = {"description": {200: "OK", 201: "Created", 204: "No Content"}.get(
        status, status_title(status))}
    if status == 204 or output.kind == "none":
        return out
    if output.kind == "json":
        schema: dict[str, Any] = dict(output.schema or {"type": "object"})
    else:
        assert output.rtype is not None
        name = schema_name(output.rtype)
        if output.kind == "collection":
            schema = _ref(f"{name}CollectionDocument")
        else:
            variant = "Created" if output.include_once else ""
            schema = _ref(f"{name}{variant}Document")
    out["content"] = {route.media_type: {"schema": schema}}
    if status == 201:
        out["headers"] = {"Location": {"description": "URL of the new resource",
                                       "schema": {"type": "string"}}}
    return out
