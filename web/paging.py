"""The one shape of every list answer of the API:

``{"total": N, "limit": L, "offset": O, "next": "<path?...&offset=O+L>" | null, "items": [...]}``

``?limit=`` (1–500, default 50) and ``?offset=`` (≥ 0) select the page; ``next`` is the same request
with the following offset (absent — null — on the last page), so a client pages by following it.
``paged`` runs a SQL query one page at a time (with a count); ``paged_list`` pages a list that was
computed in Python (an overdue list, a plan's rows). ``paged_schema`` describes the envelope in the
OpenAPI document.
"""

from __future__ import annotations

from urllib.parse import urlencode

import marshmallow as ma
from flask import request
from sqlalchemy import func, select

from forms.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 10**9  # beyond any table here; keeps the value inside every database's integer range


def page_args(default_limit: int = DEFAULT_LIMIT) -> tuple[int, int]:
    """``(limit, offset)`` from the query string; a 422 naming the parameter when it is no integer."""
    out = {}
    for name, default, low, high in (("limit", default_limit, 1, MAX_LIMIT), ("offset", 0, 0, MAX_OFFSET)):
        if name not in request.args:
            out[name] = default
            continue
        raw = request.args[name].strip()
        try:
            value = int(raw)
        except ValueError:
            raise ValidationFailed(f"分页参数 {name} 应为整数", fields={name: "应为整数"}) from None
        out[name] = min(max(value, low), high)
    return out["limit"], out["offset"]


def int_arg(name: str) -> int:
    """The query parameter ``name`` as a database id; a 422 naming it when it is not one (an id
    beyond the 64-bit range cannot exist: it is refused the same way, never an overflow)."""
    raw = (request.args.get(name) or "").strip()
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationFailed(f"参数 {name} 应为编号（正整数）", fields={name: "应为正整数"})
    return int(raw)


def choice_arg(name: str, choices) -> str | None:
    """The query parameter ``name`` when given: one of ``choices``, else a 422 naming them."""
    raw = request.args.get(name)
    if raw and raw not in choices:
        raise ValidationFailed(f"{name} 应为 {'、'.join(choices)} 之一", fields={name: "、".join(choices)})
    return raw or None


def next_link(limit: int, offset: int, total: int) -> str | None:
    """The request's path and query with the next offset, or None on the last page."""
    if offset + limit >= total:
        return None
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("limit", "offset")]
    args += [("limit", str(limit)), ("offset", str(offset + limit))]
    return f"{request.path}?{urlencode(args)}"


def envelope(items: list, total: int, limit: int, offset: int, **extra) -> dict:
    return {**extra, "total": total, "limit": limit, "offset": offset,
            "next": next_link(limit, offset, total), "items": items}


def paged(session, q, to_json, *, default_limit: int = DEFAULT_LIMIT, **extra) -> dict:
    """One page of the SQL query ``q`` (ordered by the caller), each row through ``to_json``."""
    limit, offset = page_args(default_limit)
    total = session.scalar(select(func.count()).select_from(q.order_by(None).subquery()))
    rows = session.scalars(q.limit(limit).offset(offset))
    return envelope([to_json(x) for x in rows], total, limit, offset, **extra)


def paged_list(items: list, to_json=None, *, default_limit: int = DEFAULT_LIMIT, **extra) -> dict:
    """One page of a list computed in Python."""
    limit, offset = page_args(default_limit)
    chunk = items[offset:offset + limit]
    return envelope([to_json(x) for x in chunk] if to_json else list(chunk), len(items), limit, offset, **extra)


PAGE_PARAMETERS = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "default": DEFAULT_LIMIT},
     "description": "每页条数，1–500（超出按最近的界限）"},
    {"name": "offset", "in": "query", "required": False,
     "schema": {"type": "integer", "default": 0}, "description": "从第几条开始，0 起（负数按 0）"},
]

_PAGED: dict[str, type[ma.Schema]] = {}


def paged_schema(item: type[ma.Schema] | None = None, name: str | None = None) -> type[ma.Schema]:
    """A Schema class for the envelope around ``item`` (any JSON object when None)."""
    key = name or (item.__name__ if item else "Object")
    if key not in _PAGED:
        inner = ma.fields.Nested(item) if item else ma.fields.Dict()
        _PAGED[key] = type(f"Page{key}", (ma.Schema,), {
            "total": ma.fields.Integer(required=True, metadata={"description": "符合条件的总条数"}),
            "limit": ma.fields.Integer(required=True),
            "offset": ma.fields.Integer(required=True),
            "next": ma.fields.String(allow_none=True, required=True,
                                     metadata={"description": "下一页的地址，最后一页为 null"}),
            "items": ma.fields.List(inner, required=True),
            "Meta": type("Meta", (), {"unknown": ma.INCLUDE}),
        })
    return _PAGED[key]
