"""The published OpenAPI document says what the service really answers.

* Every error answer has one body, ``{"error": code, "message": 中文, "fields": {name: reason}}``
  (some add keys, e.g. a 409 names the current state and the allowed actions): ``ErrorOut`` is the
  ``default`` response of every operation (flask-smorest's ``ERROR_SCHEMA``).
* Success answers: a route documented with ``@blp.response`` keeps it; for the others the status
  codes are read from the route's own ``return …, 201`` statements (one fact, in the code), each
  documented as a JSON object — or, with ``@produces``, the file types a download sends.
* Routes that read a JSON object with ``request.get_json`` / ``json_body()`` declare a JSON request
  body; ``@query(...)`` declares query parameters (required ones first of all, so a client — or a
  fuzzer — knows what to send).
* 405 answers carry ``Allow`` (``web.errors``).

``finish_spec(app, api)`` runs once, after every blueprint is registered.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from copy import deepcopy

import marshmallow as ma

from web.paging import PAGE_PARAMETERS, paged_schema

JSON = "application/json"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ZIP = "application/zip"
PNG = "image/png"
BINARY = {"type": "string", "format": "binary"}
OBJECT = {"type": "object"}
PAGE_QUERY = tuple(PAGE_PARAMETERS)  # ?limit= and ?offset= of every list


class ErrorOut(ma.Schema):
    """The body of every error answer."""

    class Meta:
        unknown = ma.INCLUDE

    error = ma.fields.String(required=True, metadata={"description": "错误代码，如 validation_failed、not_found"})
    message = ma.fields.String(required=True, metadata={"description": "给用户看的中文说明"})
    fields = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(),
                            metadata={"description": "出错的字段及原因（字段名 → 原因）"})


def _manual_doc(func, doc: dict):
    """Merge ``doc`` into the operation flask-smorest documents for ``func`` (as ``blp.doc``)."""
    from flask_smorest.utils import deepupdate

    apidoc = deepcopy(getattr(func, "_apidoc", {}))
    apidoc["manual_doc"] = deepupdate(deepcopy(apidoc.get("manual_doc", {})), doc)
    func._apidoc = apidoc
    return func


def produces(*content_types: str, status: int = 200, description: str = "文件下载"):
    """Document a success answer of ``status`` sent as one of ``content_types`` (JSON as an object,
    any other type as binary)."""
    content = {ct: {"schema": OBJECT if ct == JSON else BINARY} for ct in content_types}
    return lambda func: _manual_doc(func, {"responses": {str(status): {"description": description,
                                                                        "content": content}}})


def paged_response(name: str, description: str):
    """Document a list route's 200 answer as the shared list envelope (``web.paging``: total, limit,
    offset, next, items) of objects of kind ``name``."""
    content = {JSON: {"schema": paged_schema(name=name)}}
    return lambda func: _manual_doc(func, {"responses": {"200": {"description": description, "content": content}}})


def query(*params: tuple):
    """Document query parameters: ``(name, type, required, description)`` with type ``int``,
    ``str``, ``date`` or a list of allowed strings."""
    out = []
    for param in params:
        if isinstance(param, dict):  # a full OpenAPI parameter (e.g. PAGE_QUERY)
            out.append(param)
            continue
        name, kind, required, description = param
        if isinstance(kind, (list, tuple)):
            schema = {"type": "string", "enum": list(kind)}
        else:
            schema = {"int": {"type": "integer", "minimum": 0},
                      "str": {"type": "string"},
                      "date": {"type": "string", "format": "date"}}[kind]
        out.append({"name": name, "in": "query", "required": required, "schema": schema,
                    "description": description})
    return lambda func: _manual_doc(func, {"parameters": out})


# ---- post-processing of the generated document --------------------------------------------------------

_RULE_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_HTTP_DESCRIPTIONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def _source_of(view) -> ast.AST | None:
    func = inspect.unwrap(view)
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return None


def success_statuses(tree: ast.AST | None) -> set[int]:
    """The status codes a view's ``return`` statements give (200 for a plain ``return body``),
    not descending into nested functions."""
    found: set[int] = set()
    if tree is None:
        return {200}
    root = tree.body[0] if isinstance(tree, ast.Module) and tree.body else tree
    stack = list(getattr(root, "body", []))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return) and node.value is not None:
            v = node.value
            if isinstance(v, ast.Tuple) and len(v.elts) >= 2 and isinstance(v.elts[1], ast.Constant) \
                    and isinstance(v.elts[1].value, int):
                found.add(v.elts[1].value)
            else:
                found.add(200)
        stack.extend(ast.iter_child_nodes(node))
    return found or {200}


def _reads_json(tree: ast.AST | None) -> str | None:
    """``"required"`` when the view insists on a JSON object (``json_body()``), ``"optional"`` when it
    reads one if sent (``request.get_json``), else None."""
    seen = None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name == "json_body":
                return "required"
            if name == "get_json":
                seen = "optional"
    return seen


def finish_spec(app, api) -> None:
    """Complete every operation of ``api``'s document: success answers, JSON request bodies."""
    paths = api.spec._paths
    for rule in app.url_map.iter_rules():
        path = _RULE_ARG.sub(r"{\1}", rule.rule)
        if path not in paths:
            continue
        view = app.view_functions.get(rule.endpoint)
        tree = _source_of(view) if view else None
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = paths[path].get(method.lower())
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            declared = {int(k) for k in responses if str(k).isdigit() and 200 <= int(k) < 400}
            for status in sorted(success_statuses(tree) - declared):
                if declared and status == 200 and any(s < 300 for s in declared):
                    continue  # ``return body`` of a route with a declared success code
                responses[str(status)] = {"description": _HTTP_DESCRIPTIONS.get(status, "OK"),
                                          "content": {JSON: {"schema": OBJECT}}}
            body = _reads_json(tree) if method in ("POST", "PUT", "PATCH") else None
            if body and "requestBody" not in op:
                op["requestBody"] = {"required": body == "required", "content": {JSON: {"schema": OBJECT}}}
