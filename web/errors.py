"""The one place where errors become HTTP responses: ``{"error": code, "message": ..., "fields": {...}}``
for the API, a small HTML page for browsers (microblog's ``errors/handlers.py`` pattern)."""

from __future__ import annotations

import logging
import re

from flask import jsonify, make_response, redirect, render_template, request, url_for
from sqlalchemy.exc import DataError, IntegrityError
from werkzeug.exceptions import HTTPException

from forms.errors import BaoxueError

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "validation_failed", 429: "too_many_requests",
               500: "internal_error"}


_CN_DEFAULTS = {400: "请求格式有误", 404: "没有这个地址", 405: "此地址不支持该请求方法",
                415: "不支持的内容类型", 500: "服务器内部错误，请稍后重试或联系管理员",
                503: "服务暂时不可用，请稍后重试"}


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json"


def error_response(status: int, body: dict):
    if wants_json():
        return jsonify(body), status
    if status >= 500 and not _CJK.search(body.get("message") or ""):
        # an operator's message (LibreOffice, tesseract...: logged, and in the API's answer) is no
        # help to a clerk: the page says what happened and what to do
        body = {**body, "message": TOOL_TROUBLE}
    return render_template("error.html", status=status, body=body), status


_CJK = re.compile(r"[\u4e00-\u9fff]")
TOOL_TROUBLE = "后台程序（文书转换或识别）暂时出错，这次操作没有完成，请稍后重试；如反复出现请联系系统管理员"


def handle_baoxue_error(e: BaoxueError):
    if e.http_status >= 500:
        # a 503 with Retry-After (renderers busy, LibreOffice paused) is the service pacing its
        # clients, not a fault
        (log.warning if e.details.get("retry_after") else log.error)("%s: %s", e.code, e.message)
    if e.http_status == 401:
        return unauthorized_response(e)
    response, status = error_response(e.http_status, e.to_dict())
    if e.details.get("retry_after"):
        response.headers["Retry-After"] = str(int(e.details["retry_after"]))
    return response, status


def unauthorized_response(e: BaoxueError):
    """401: JSON with a ``WWW-Authenticate`` challenge for the API; a page is sent to log in."""
    if wants_json():
        response, status = error_response(401, e.to_dict())
        response.headers["WWW-Authenticate"] = 'Bearer realm="baoxue"'
        return response, status
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def http_error_body(e: HTTPException) -> dict:
    status = e.code or 500
    fields = {}
    data = getattr(e, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if messages:  # webargs/marshmallow validation errors: {location: {field: [msgs]}}
        for _location, errs in messages.items():
            for name, msgs in _flatten(errs):
                fields[name] = "；".join(str(m) for m in msgs) if isinstance(msgs, list) else str(msgs)
    message = e.description or e.name
    if status in _CN_DEFAULTS and e.description == type(e).description:  # Werkzeug's English default
        message = _CN_DEFAULTS[status]
        if status == 405 and getattr(e, "valid_methods", None):
            message += "（可用：" + "、".join(sorted(set(e.valid_methods) - {"HEAD", "OPTIONS"})) + "）"
    if status == 413:
        message = "上传的文件太大"
    if status == 429:
        message = "请求过于频繁，请稍后再试"
    if fields:
        message = f"有{len(fields)}处输入错误"
    return {"error": _HTTP_CODES.get(status, "http_error"), "message": message, "fields": fields}


def _flatten(errs, prefix=""):
    if isinstance(errs, dict):
        for k, v in errs.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                yield from _flatten(v, name)
            else:
                yield name, v
    else:
        yield prefix or "_", errs


def handle_http_error(e: HTTPException):
    response = make_response(error_response(e.code or 500, http_error_body(e)))
    # Werkzeug's own headers for the answer: ``Allow`` on a 405, ``Retry-After`` on a 429/503.
    for name, value in e.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_unexpected(e: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, {"error": "internal_error", "message": "服务器内部错误，请稍后重试或联系管理员",
                                "fields": {}})


def handle_integrity_error(e: IntegrityError):
    """A constraint the checks before flush (``cases.store.integrity``) could not foresee, e.g. two
    requests racing for the same unique value: 409, never a 500."""
    log.warning("integrity error on %s %s: %s", request.method, request.path, str(e.orig)[:300])
    return error_response(409, {"error": "conflict", "fields": {},
                                "message": "与已有记录冲突（可能是重复提交或并发修改），请刷新后重试"})


def handle_data_error(e: DataError):
    log.warning("data error on %s %s: %s", request.method, request.path, str(e.orig)[:300])
    return error_response(422, {"error": "validation_failed", "message": "输入的值超出允许的范围或格式",
                                "fields": {}})


def handle_overflow(e: OverflowError):
    # A number from the request too large for the database driver (ids are checked by the URL
    # converter; this catches ones in a body or query string).
    return error_response(422, {"error": "validation_failed", "message": "输入的数值超出允许的范围", "fields": {}})


def refuse_non_object_json():
    """A JSON request body must be one JSON object (every body of this API is): an array, a bare
    value or broken JSON is refused here with a 400/422 naming it, before any route reads it."""
    if request.method not in ("POST", "PUT", "PATCH") or not request.is_json or not request.content_length:
        return None
    body = request.get_json(silent=True)
    if body is None:
        return error_response(400, {"error": "bad_request", "message": "请求体不是有效的 JSON",
                                    "fields": {"body": "无效的 JSON"}})
    if not isinstance(body, dict):
        return error_response(422, {"error": "validation_failed", "message": "请求体应为 JSON 对象",
                                    "fields": {"body": "JSON 对象"}})
    return None


def register_error_handlers(app):
    app.before_request(refuse_non_object_json)
    app.register_error_handler(BaoxueError, handle_baoxue_error)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(DataError, handle_data_error)
    app.register_error_handler(OverflowError, handle_overflow)
    app.register_error_handler(HTTPException, handle_http_error)
    if not app.config.get("TESTING"):
        app.register_error_handler(Exception, handle_unexpected)
