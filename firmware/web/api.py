"""The JSON API's route table and what is generated from it: argument checking and the OpenAPI document.

Each ``Endpoint`` says its method and path, the privilege it needs (None: no login), its query and path
parameters with their bounds, its body (JSON with a schema, or a binary upload) and what it answers. The web
app serves exactly this table (``firmware.web.app``), ``GET /api/openapi.json`` is generated from it, and so is
``docs/web-api.md`` (``make docs``); the API fuzz test draws its requests from the same document.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from firmware.security.authorize import OPERATIONS, Identity

LOGGED_IN = "logged-in"          # an endpoint any logged-in user may call (its handler may ask for more)
ERROR_SCHEMA = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string", "description": "what was wrong, where, and what to do"}}}
ERROR_TEXT = {400: "bad argument or refused value", 401: "not logged in (or the session ended)",
              403: "not allowed: privilege, revenue lock or CSRF token", 404: "no such thing",
              409: "refused by the meter in its present state", 413: "request body too large",
              415: "wrong content type", 422: "refused by the owning service (the reason is in 'error')",
              429: "too many requests from this address", 503: "the meter part that answers is not running"}


class ApiError(Exception):
    """An answer other than 200: ``status`` and the message the user sees (what, where, what to do)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


@dataclass(frozen=True)
class Param:
    name: str
    type: str                       # "integer" | "number" | "string" | "boolean"
    doc: str
    where: str = "query"            # "query" | "path"
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()
    max_length: int = 200

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.enum:
            out["enum"] = list(self.enum)
        if self.type == "string" and not self.enum:
            out["maxLength"] = self.max_length
        if self.default is not None:
            out["default"] = self.default
        return out

    def parse(self, raw: str | None) -> Any:
        """The parameter's value from its text, or ApiError(400) naming it and what is allowed."""
        if raw is None or raw == "":
            if self.required:
                raise ApiError(400, f"parameter '{self.name}' is required: {self.doc}")
            return self.default
        value = self._convert(raw)
        if self.enum and value not in self.enum:
            raise ApiError(400, f"parameter '{self.name}': {str(value)[:40]!r} is not one of {', '.join(self.enum)}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            low = "" if self.minimum is None else f"{self.minimum:g}"
            high = "" if self.maximum is None else f"{self.maximum:g}"
            raise ApiError(400, f"parameter '{self.name}': {value} is outside {low}..{high}")
        return value

    def _convert(self, raw: str) -> Any:
        shown = repr(raw[:40])
        if self.type == "integer":
            try:
                return int(raw)
            except ValueError:
                raise ApiError(400, f"parameter '{self.name}': {shown} is not an integer") from None
        if self.type == "number":
            try:
                value = float(raw)
            except ValueError:
                raise ApiError(400, f"parameter '{self.name}': {shown} is not a number") from None
            if not math.isfinite(value):
                raise ApiError(400, f"parameter '{self.name}': {shown} is not a finite number")
            return value
        if self.type == "boolean":
            if raw not in ("true", "false"):
                raise ApiError(400, f"parameter '{self.name}': write true or false, not {shown}")
            return raw == "true"
        if len(raw) > self.max_length:
            raise ApiError(400, f"parameter '{self.name}' is longer than {self.max_length} characters")
        return raw


@dataclass
class Call:
    """One request as a handler sees it: who asks (None before login), the checked parameters, the body."""

    identity: Identity | None
    address: str
    params: dict[str, Any]
    body: Any = None
    request: Any = None

    @property
    def user(self) -> str:
        return self.identity.user if self.identity is not None else ""


Handler = Callable[[Any, Call], Awaitable[Any]]   # (the WebContext, the call)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    operation: str | None            # asked of the authorization point; None: no login; LOGGED_IN: any session
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # JSON schema of a JSON body
    upload: bool = False             # the body is a binary upload streamed to disk
    returns: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    errors: tuple[int, ...] = ()
    stream: bool = False             # answers text/event-stream
    description: str = ""

    @property
    def changes_state(self) -> bool:
        return self.method != "GET"

    @property
    def operation_id(self) -> str:
        words = [w for w in self.path.replace("{", "").replace("}", "").split("/") if w and w != "api"]
        return self.method.lower() + "_" + "_".join(w.replace("-", "_") for w in words)

    def error_codes(self) -> list[int]:
        codes = set(self.errors) | {400, 429}
        if self.operation is not None:
            codes |= {401, 403}
        if self.body is not None or self.upload:
            codes |= {413, 415}
        return sorted(codes)


def check_json(schema: dict[str, Any], value: Any, where: str = "body") -> None:
    """Check a JSON value against the small subset of JSON Schema the route table uses; ApiError(400) if not."""
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in types and not isinstance(value, types[kind]):
        raise ApiError(400, f"{where} must be a JSON {kind}")
    if kind in ("integer", "number") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or kind == "integer" and not isinstance(value, int)):
        raise ApiError(400, f"{where} must be a JSON {kind}")
    if kind == "string" and len(value) > schema.get("maxLength", 1 << 20):
        raise ApiError(400, f"{where} is longer than {schema['maxLength']} characters")
    if kind == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise ApiError(400, f"{where}: '{name}' is missing")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise ApiError(400, f"{where}: unknown field(s) {', '.join(extra)[:200]}; allowed: {', '.join(props)}")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise ApiError(400, f"{where} has more than {schema['maxProperties']} fields")
        for name, sub in props.items():
            if name in value:
                check_json(sub, value[name], f"{where}.{name}")


def openapi(endpoints: list[Endpoint], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the route table."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {"operationId": ep.operation_id, "summary": ep.summary, "tags": [ep.tag]}
        if ep.description:
            op["description"] = ep.description
        if ep.params:
            op["parameters"] = [{"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                                 "description": p.doc, "schema": p.schema()} for p in ep.params]
        if ep.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ep.body}}}
        elif ep.upload:
            op["requestBody"] = {"required": True, "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}
        ok_content = ({"text/event-stream": {"schema": {"type": "string"}}} if ep.stream
                      else {"application/json": {"schema": ep.returns}})
        op["responses"] = {"200": {"description": "done", "content": ok_content}}
        for code in ep.error_codes():
            op["responses"][str(code)] = {"description": ERROR_TEXT.get(code, "refused"), "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if ep.operation is None:
            op["security"] = []
        else:
            op["x-operation"] = ep.operation
            if ep.operation in OPERATIONS:
                op["x-privilege"] = OPERATIONS[ep.operation].privilege.value
            if ep.changes_state:
                op["security"] = [{"session": [], "csrf": []}]
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "The meter's JSON API, generated from its route table (firmware/web/routes.py)."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-meter_session",
                            "description": "set by POST /api/session (login)"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "the session's CSRF token (from the login answer or GET /api/session), "
                                        "on every request that changes something"},
            },
        },
        "security": [{"session": []}],
    }


def markdown(document: dict[str, Any], generator: str) -> str:
    """docs/web-api.md: every endpoint with its privilege, parameters, body and answers."""
    lines = ["# Web JSON API reference", "", f"<!-- Generated by `{generator}` from firmware/web/routes.py; "
             "do not edit. -->", "",
             "Every endpoint is under `https://METER/api/`. Log in with `POST /api/session`; the answer sets the "
             "session cookie and carries the CSRF token that every request which changes something must send in "
             "the `X-CSRF-Token` header. Errors are JSON `{\"error\": \"...\"}` saying what was wrong and what to "
             "do. The same document is served as OpenAPI 3.1 at `/api/openapi.json`. See docs/web.md.", ""]
    tags: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            tags.setdefault(op["tags"][0], []).append((method.upper(), path, op))
    for tag, ops in tags.items():
        lines += [f"## {tag}", ""]
        for method, path, op in ops:
            privilege = (f"`{op['x-privilege']}` (operation `{op['x-operation']}`)" if "x-privilege" in op else
                         "any logged-in user" if "x-operation" in op else "none (no login)")
            csrf = " + CSRF token" if op.get("security") and any("csrf" in s for s in op["security"]) else ""
            lines += [f"### `{method} {path}`", "", op["summary"] + ("" if op["summary"].endswith(".") else "."),
                      ""]
            if op.get("description"):
                lines += [op["description"], ""]
            lines += [f"Privilege: {privilege}{csrf}.", ""]
            if op.get("parameters"):
                lines += ["| parameter | in | type | allowed | description |", "|---|---|---|---|---|"]
                for p in op["parameters"]:
                    s = p["schema"]
                    allowed = (", ".join(s["enum"]) if "enum" in s else
                               f"{s.get('minimum', '')}..{s.get('maximum', '')}" if "minimum" in s else "")
                    lines.append(f"| `{p['name']}` | {p['in']} | {s['type']} | {allowed} | {p['description']} |")
                lines.append("")
            body = op.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                schema = body["application/json"]["schema"]
                lines += ["Body (JSON object):", "", "| field | type | required | description |", "|---|---|---|---|"]
                for name, sub in schema.get("properties", {}).items():
                    limit = f", at most {sub['maxLength']} characters" if "maxLength" in sub else (
                        f", at most {sub['maxProperties']} entries" if "maxProperties" in sub else "")
                    lines.append(f"| `{name}` | {sub['type']}{limit} | {'yes' if name in schema.get('required', []) else 'no'} "
                                 f"| {sub.get('description', '')} |")
                lines.append("")
            elif body:
                lines += ["Body: the raw file (`application/octet-stream`).", ""]
            codes = [c for c in op["responses"] if c != "200"]
            lines += ["Answers: 200" + "".join(f", {c} ({op['responses'][c]['description']})" for c in codes), ""]
    return "\n".join(lines).rstrip() + "\n"
