"""The tamper-evident audit log (issue 10 item 6): a row changed, deleted or inserted with raw SQL
is found by ``flask audit verify``, which exits non-zero and names the first broken entry; an
untouched log verifies. On PostgreSQL the append-only trigger refuses UPDATE and DELETE first (the
test then switches it off, as a database owner bent on rewriting history could)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from cases.store import audit
from cases.store.models import AuditLog, Org


def _engine(app):
    return app.extensions["baoxue_engine"]


def _is_pg(app) -> bool:
    return _engine(app).dialect.name == "postgresql"


def _sql(app, statement: str, **params) -> None:
    with _engine(app).begin() as conn:
        conn.execute(text(statement), params)


def _verify(app) -> tuple[int, str]:
    r = app.test_cli_runner().invoke(args=["audit", "verify"])
    return r.exit_code, r.output


@pytest.fixture
def logged(app, app_session):
    """Five entries written through the log, the way the service writes them."""
    county = Org(kind="county", name="青禾县", code="419901", doc_prefix="青政")
    app_session.add(county)
    app_session.commit()
    for i in range(1, 6):
        audit.record(app_session, who=f"clerk{i}", org=county, action="case.update", target=f"case:{i}",
                     before={"state": "ABSENT"}, after={"state": "PERSUADING", "n": i})
        app_session.commit()
    rows = app_session.scalars(select(AuditLog).order_by(AuditLog.seq)).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    return {r.seq: r for r in rows}


def _unguarded(app):
    """On PostgreSQL: show that the trigger refuses, then switch it off for the rest of the test."""
    if not _is_pg(app):
        return
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="append-only"):
        _sql(app, "UPDATE audit_log SET target = 'case:99' WHERE seq = 3")
    with pytest.raises(DBAPIError, match="append-only"):
        _sql(app, "DELETE FROM audit_log WHERE seq = 4")
    _sql(app, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")


def test_untouched_log_verifies(app, logged):
    code, out = _verify(app)
    assert code == 0 and "审计日志完好：5 条" in out, out


def test_raw_sql_edit_is_found_and_named(app, logged):
    _unguarded(app)
    _sql(app, "UPDATE audit_log SET target = 'case:99' WHERE seq = 3")
    code, out = _verify(app)
    assert code == 1 and f"第3条（id {logged[3].id}，case.update case:99）的内容与其哈希不符：条目被改动" in out, out
    _sql(app, "UPDATE audit_log SET target = 'case:3' WHERE seq = 3")  # put back exactly: whole again
    assert _verify(app)[0] == 0
    # an edit that also recomputes the row's own hash breaks the link of the next one
    row = logged[2]
    content = {**audit.entry_content(row.seq, row.at, row.user_id, row.who, row.org_id, row.action, row.target,
                                     row.before, row.after), "who": "director.zhang"}
    _sql(app, "UPDATE audit_log SET who = 'director.zhang', hash = :h WHERE seq = 2",
         h=audit.entry_hash(content, row.prev_hash))
    code, out = _verify(app)
    assert code == 1 and f"第3条（id {logged[3].id}，case.update case:3）与上一条不相接" in out, out


def test_raw_sql_delete_is_found_and_named(app, logged):
    _unguarded(app)
    _sql(app, "DELETE FROM audit_log WHERE seq = 4")
    code, out = _verify(app)
    assert code == 1 and "第4条缺失：条目被删除" in out, out
    _sql(app, "DELETE FROM audit_log WHERE seq = 5")  # the last one too: the chain head remembers it
    _sql(app, "DELETE FROM audit_log WHERE seq = 4")
    code, out = _verify(app)
    assert code == 1 and "最后的第4至5条缺失：条目被删除" in out, out


def test_deleting_the_last_entry_is_found(app, logged):
    _unguarded(app)
    _sql(app, "DELETE FROM audit_log WHERE seq = 5")
    code, out = _verify(app)
    assert code == 1 and "最后的第5条缺失：条目被删除" in out, out


def test_raw_sql_insert_is_found_and_named(app, logged):
    last = logged[5]
    forged = audit.entry_content(6, last.at, None, "director.zhang", last.org_id, "case.close", "case:1", None,
                                 {"state": "CLOSED"})
    # a well-formed entry, chained and hashed correctly, but not written through the log
    _sql(app, "INSERT INTO audit_log (seq, who, org_id, action, target, after, at, prev_hash, hash) "
              "VALUES (6, 'director.zhang', :org, 'case.close', 'case:1', :after, :at, :prev, :h)",
         org=last.org_id, after='{"state": "CLOSED"}', at=last.at, prev=last.hash,
         h=audit.entry_hash(forged, last.hash))
    code, out = _verify(app)
    assert code == 1 and "第6条起的条目不是通过日志写入的：条目被插入" in out, out
