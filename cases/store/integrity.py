"""Bad values refused before the database sees them, the same on SQLite and PostgreSQL.

Before every flush, each new row and each changed column is checked: a foreign key must name an
existing row, a text must fit its column (``String(n)``; SQLite would store it, PostgreSQL
raises), a text may not hold NUL (PostgreSQL refuses it), an integer must fit 64 bits. A failure
raises ``ValidationFailed`` naming the column as the field, so a request answers 422 instead of
an ``IntegrityError``/``DataError`` 500, and nothing is written.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from forms.errors import ValidationFailed

INT64 = (-(2**63), 2**63 - 1)


def install(factory: sessionmaker[Session]) -> None:
    """Check every session of ``factory`` before it flushes (idempotent)."""
    if not event.contains(factory, "before_flush", _before_flush):
        event.listen(factory, "before_flush", _before_flush)


_MAPPERS: dict = {}


def _mappers_by_table() -> dict:
    if not _MAPPERS:
        from cases.store.models import Base

        _MAPPERS.update({m.local_table: m for m in Base.registry.mappers})
    return _MAPPERS


def _before_flush(session: Session, _flush_context, _instances) -> None:
    new = list(session.new)
    pending = set()
    for obj in new:
        state = inspect(obj)
        for col in state.mapper.primary_key:
            value = state.dict.get(state.mapper.get_property_by_column(col).key)
            if value is not None:
                pending.add((col.table, value))
    checked: dict = {}
    for obj in new + [o for o in session.dirty if o not in session.deleted]:
        state = inspect(obj)
        is_new = obj in session.new
        for prop in state.mapper.column_attrs:
            if len(prop.columns) != 1 or prop.key not in state.dict:
                continue
            if not is_new and not state.attrs[prop.key].history.has_changes():
                continue
            _check_value(session, state.mapper, prop.key, prop.columns[0], state.dict[prop.key], pending, checked)


def _check_value(session, mapper, key, col, value, pending, checked) -> None:
    if value is None:
        return
    label = f"{mapper.local_table.name}.{key}"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed(f"“{key}”含有不允许的控制字符（NUL）", fields={key: "含有 NUL 字符"}, column=label)
        length = getattr(col.type, "length", None)
        if isinstance(col.type, String) and length and len(value) > length:
            raise ValidationFailed(f"“{key}”过长：{len(value)}个字符，最多{length}个",
                                   fields={key: f"最多{length}个字符（现为{len(value)}个）"}, column=label)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(col.type, Integer):
        if not INT64[0] <= value <= INT64[1]:
            raise ValidationFailed(f"“{key}”超出范围", fields={key: "超出整数范围"}, column=label)
    for fk in col.foreign_keys:
        target = fk.column
        if (target.table, value) in pending or (target.primary_key and (target.table, value) in checked):
            continue
        if isinstance(target.type, Integer) and not isinstance(value, int):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ValidationFailed(f"“{key}”应为整数：{value!r}", fields={key: "应为整数"}, column=label) from None
        if not _exists(session, target, value):
            raise ValidationFailed(f"“{key}”引用的记录不存在：{value}",
                                   fields={key: f"{target.table.name} 中没有 {value}"}, column=label)
        checked[(target.table, value)] = True


def _exists(session: Session, target, value) -> bool:
    mapper = _mappers_by_table().get(target.table)
    if mapper is not None and target.primary_key and len(mapper.primary_key) == 1:
        key = mapper.identity_key_from_primary_key([value])
        obj = session.identity_map.get(key)
        if obj is not None and obj not in session.deleted:
            return True
    return session.execute(select(target).where(target == value).limit(1)).first() is not None
