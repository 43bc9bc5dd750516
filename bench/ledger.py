"""Ledger benchmark: a synthetic prefecture, then the time of a county aggregate, a prefecture
aggregate and a 10,000-row XLSX export, on SQLite and on PostgreSQL. Prints figures (no asserts).

Targets: county aggregate ≤ 0.5 s (SQLite) / ≤ 0.2 s (PostgreSQL); prefecture aggregate ≤ 2 s
(PostgreSQL); 10,000-row XLSX ≤ 3 s.

The prefecture (synthetic, every person invented): 10 counties × 12 townships × (8 villages +
8 schools: 5 primary, 3 junior), ``--pupils`` pupils spread over the schools' classes, ``--cases``
cases opened from September 2021 to December 2025, each with its state events, attempts, a
township notice (Document) and its service event. Loaded fast, bypassing the ORM: executemany in
large transactions into a SQLite file under /tmp, COPY into a dedicated PostgreSQL schema; both
are removed afterwards (``--keep`` keeps them).

    .venv/bin/python -m bench.ledger                 # full size: 1,000,000 pupils, 20,000 cases
    .venv/bin/python -m bench.ledger --quick         # 50,000 pupils, 2,000 cases
    .venv/bin/python -m bench.ledger --engines sqlite
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from cases.ledgers import ledger as ledgers  # noqa: E402
from cases.store.db import create_schema, make_engine, make_session_factory, normalise_url  # noqa: E402
from forms.validators import id_check_char  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGETS = {"county_aggregate": {"sqlite": 0.5, "postgresql": 0.2},
           "prefecture_aggregate": {"postgresql": 2.0}, "xlsx_10000": {"sqlite": 3.0, "postgresql": 3.0}}
AS_OF = dt.date(2025, 12, 31)
COUNTIES, TOWNSHIPS, VILLAGES, PRIMARY, JUNIOR = 10, 12, 8, 5, 3
UTC = dt.UTC
CST = dt.timezone(dt.timedelta(hours=8))


def out(msg: str = "") -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# ---- synthetic data ------------------------------------------------------------------------------------

class Data:
    """Rows per table, as tuples in the column order of ``COLUMNS``."""

    def __init__(self, pupils: int, cases: int, seed: int = 7):
        self.rng = random.Random(seed)
        self.n_pupils, self.n_cases = pupils, cases
        self.orgs: list[tuple] = []
        self.classes: list[tuple] = []
        self.schools: list[tuple[int, str, list[int]]] = []  # (school id, level, village ids)
        self.school_township: dict[int, int] = {}
        self.county_ids: list[int] = []
        self.prefecture_id = 0
        self.pupil_class: list[tuple[int, int, int]] = []  # (pupil id, school, grade)

    def build_orgs(self) -> None:
        next_id = iter(range(1, 10**7))
        now = "2025-01-01 00:00:00.000000"

        def add(kind, name, parent, path, code=None):
            oid = next(next_id)
            p = f"{path}{oid}/"
            self.orgs.append((oid, parent, kind, name, code, None, p, None, now))
            return oid, p

        prov, ppath = add("province", "演示省", None, "/", "490000")
        self.prefecture_id, fpath = add("prefecture", "演示州", prov, ppath, "499900")
        class_id = iter(range(1, 10**7))
        for c in range(COUNTIES):
            county, cpath = add("county", f"演示{c + 1}县", self.prefecture_id, fpath, f"4999{c + 1:02d}")
            self.county_ids.append(county)
            for t in range(TOWNSHIPS):
                town, tpath = add("township", f"第{t + 1}镇", county, cpath, f"4999{c + 1:02d}{t + 1:03d}000")
                villages = [add("village", f"第{v + 1}村", town, tpath)[0] for v in range(VILLAGES)]
                for s in range(PRIMARY + JUNIOR):
                    level = "primary" if s < PRIMARY else "junior"
                    school, _ = add("school", f"第{t + 1}镇第{s + 1}{'小学' if level == 'primary' else '中学'}",
                                    town, tpath, f"2{c:02d}{t:03d}{s:04d}")
                    self.schools.append((school, level, villages))
                    self.school_township[school] = town
                    grades = range(1, 7) if level == "primary" else range(7, 10)
                    per_grade = 4 if level == "primary" else 7
                    for g in grades:
                        for k in range(per_grade):
                            self.classes.append((next(class_id), school, g, f"{g}年级({k + 1})班", 2025))

    def pupils(self) -> Iterator[tuple]:
        """Pupils spread evenly over the classes (grade-consistent birth dates, unique IDs)."""
        rng = random.Random(11)  # the same pupils for every engine
        now = "2025-01-01 00:00:00.000000"
        classes = self.classes
        seq_per_day: dict[dt.date, int] = {}
        villages = {s: v for s, _l, v in self.schools}
        for i in range(1, self.n_pupils + 1):
            cid, school, grade, _name, _y = classes[i % len(classes)]
            birth = dt.date(2025 - 6 - (grade - 1), 9, 1) - dt.timedelta(days=rng.randrange(1, 365))
            n = seq_per_day.get(birth, 0)
            seq_per_day[birth] = n + 1
            first17 = f"4107{n // 1000 % 100:02d}{birth:%Y%m%d}{n % 1000:03d}"
            idn = first17 + id_check_char(first17)
            male = n % 2 == 1
            groups, poverty = [], None
            r = rng.random()
            if r < 0.06:
                groups.append("G01")
                poverty = "tph"
            if rng.random() < 0.15:
                groups.append("G02")
            yield (i, school, cid, f"学生{i}", "男" if male else "女", birth.isoformat(), idn, "G" + idn,
                   "汉族", rng.choice(villages[school]), "演示州某村", "演示州某村某号", json.dumps(groups),
                   poverty, now)

    def cases_and_events(self) -> tuple[list[tuple], list[tuple], list[tuple]]:
        rng = self.rng
        cases, events, docs = [], [], []
        eid = iter(range(1, 10**8))
        pupils = rng.sample(self.pupil_class, self.n_cases)
        start = dt.date(2021, 9, 1)
        span = (dt.date(2025, 12, 20) - start).days

        def ts(day: dt.date, hour: int = 10) -> str:
            return dt.datetime(day.year, day.month, day.day, hour, tzinfo=CST).astimezone(UTC)\
                .strftime("%Y-%m-%d %H:%M:%S.%f")

        for n, (pid, school, _grade) in enumerate(pupils, 1):
            town = self.school_township[school]
            # newer cases more often: the last school year holds about half of them
            opened = start + dt.timedelta(days=int(span * (1 - rng.random() ** 2)))
            cid = n
            path = [("ABSENT", "T1", 0), ("VERIFY", "T3", 2), ("SUSPECTED", "T4", 5), ("REPORTED", "T7", 15),
                    ("NOTICED", "T8", 18)]
            r = rng.random()
            if r < 0.35:
                path += [("RETURNED", "T9", 25), ("CLOSED", "T21", 60)]
            elif r < 0.6:
                path += [("JOINT", "T10", 25), ("DEFERRED", "T18", 50)]
            elif r < 0.75:
                path += [("LOCATING", "T12", 30)]
            else:
                path += [("JOINT", "T10", 25)]
            last_state = "ABSENT"
            for state, code, days in path:
                day = opened + dt.timedelta(days=days)
                if day > AS_OF:
                    break
                last_state = state
                data = {"placement": rng.choice(("chaban", "danduban", "geren"))} if state == "RETURNED" else {}
                events.append((next(eid), cid, school, "transition", None, state, code, "bench", ts(day),
                               ts(day, 18), json.dumps(data)))
            for k, days in enumerate((6, 8, 10, 27, 30)):
                day = opened + dt.timedelta(days=days)
                if day > AS_OF or (k >= 3 and "JOINT" not in [p[0] for p in path]):
                    continue
                stage = "school" if k < 3 else "joint"
                events.append((next(eid), cid, school, "attempt", None, None, None, "bench", ts(day, 15),
                               ts(day, 19), json.dumps({"date": day.isoformat(), "stage": stage,
                                                        "result": rng.choice(("refused", "not_met"))})))
            notice_day = opened + dt.timedelta(days=18)
            if notice_day <= AS_OF:
                doc_id = f"B{cid:011d}"
                docs.append((doc_id, town, cid, "guardian_notice", "xianqi", "guardian_notice:限返", "2026.1",
                             notice_day.year, cid, f"第{town}镇政限返〔{notice_day.year}〕{cid}号", "issued",
                             json.dumps({}), ts(notice_day, 9)))
                events.append((next(eid), cid, town, "service", None, None, None, "bench", ts(notice_day, 16),
                               ts(notice_day, 20), json.dumps({"document_id": doc_id,
                                                               "served_on": notice_day.isoformat(),
                                                               "method": "direct", "complete": True})))
            cases.append((cid, f"{opened.year}-4999-{cid:06d}", pid, school, town, last_state,
                          rng.choice(("R01", "R02", "R06", "R07", "R11")), opened.isoformat(), 1, False,
                          ts(opened), ts(opened)))
        return cases, events, docs


COLUMNS = {
    "orgs": ("id", "parent_id", "kind", "name", "code", "doc_prefix", "path", "region_profile", "created_at"),
    "school_classes": ("id", "org_id", "grade", "name", "school_year"),
    "pupils": ("id", "org_id", "class_id", "name", "sex", "birth_date", "id_number", "xueji_no", "ethnicity",
               "hukou_org_id", "hukou_text", "address", "special_groups", "poverty_category", "created_at"),
    "cases": ("id", "number", "pupil_id", "org_id", "township_org_id", "state", "reason_code", "opened_on",
              "episode", "relapse", "created_at", "updated_at"),
    "case_events": ("id", "case_id", "org_id", "kind", "from_state", "to_state", "transition", "actor",
                    "occurred_at", "recorded_at", "data"),
    "documents": ("id", "org_id", "case_id", "form", "variant", "family", "template_version", "year", "seq",
                  "number_text", "status", "data", "created_at"),
}


# ---- loaders -------------------------------------------------------------------------------------------

def load_sqlite(engine, table: str, rows, batch: int = 50_000) -> int:
    cols = COLUMNS[table]
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    raw = engine.raw_connection()
    n = 0
    try:
        cur = raw.cursor()
        buf = []
        for r in rows:
            buf.append(r)
            if len(buf) >= batch:
                cur.executemany(sql, buf)
                n += len(buf)
                buf = []
        if buf:
            cur.executemany(sql, buf)
            n += len(buf)
        raw.commit()
    finally:
        raw.close()
    return n


def _copy_value(v) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    s = str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _pg_ts(v):  # SQLite-style naive UTC text -> explicit UTC for timestamptz
    return v + "+00" if isinstance(v, str) and len(v) == 26 and v[10] == " " else v


def load_pg(engine, table: str, rows, batch: int = 200_000) -> int:
    cols = COLUMNS[table]
    raw = engine.raw_connection()
    n = 0
    try:
        cur = raw.cursor()
        buf = io.StringIO()
        k = 0
        for r in rows:
            buf.write("\t".join(_copy_value(_pg_ts(x)) for x in r) + "\n")
            k += 1
            if k >= batch:
                buf.seek(0)
                cur.copy_expert(f"COPY {table} ({', '.join(cols)}) FROM STDIN", buf)
                n += k
                buf, k = io.StringIO(), 0
        if k:
            buf.seek(0)
            cur.copy_expert(f"COPY {table} ({', '.join(cols)}) FROM STDIN", buf)
            n += k
        raw.commit()
    finally:
        raw.close()
    return n


# ---- the run -------------------------------------------------------------------------------------------

def timed(fn, repeat: int = 3) -> tuple[float, object]:
    sec, result, _cpu = timed_cpu(fn, repeat)
    return sec, result


def timed_cpu(fn, repeat: int = 3) -> tuple[float, object, float]:
    """Median wall time, the last result and the median CPU time of this process (on a shared,
    loaded machine the client's CPU time is the steadier figure; the database server's is not in it
    for PostgreSQL)."""
    fn()  # warm-up (caches, first plan)
    times, cpu, result = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), result, statistics.median(cpu)


def run_engine(name: str, url: str, data: Data, cases, events, docs) -> dict:
    engine = make_engine(url)
    create_schema(engine)
    load = load_pg if name == "postgresql" else load_sqlite
    t0 = time.perf_counter()
    counts = {"orgs": load(engine, "orgs", data.orgs), "school_classes": load(engine, "school_classes", data.classes),
              "pupils": load(engine, "pupils", data.pupils()), "cases": load(engine, "cases", cases),
              "case_events": load(engine, "case_events", events), "documents": load(engine, "documents", docs)}
    if name == "postgresql":
        # what autovacuum does to a freshly loaded table: statistics and the visibility map (the
        # latter lets per-class counts use index-only scans)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    out(f"[{name}] loaded {counts} in {time.perf_counter() - t0:.1f} s")
    session = make_session_factory(engine)()
    results = {}
    try:
        county = data.county_ids[0]
        sec, agg = timed(lambda: ledgers.aggregate(session, ledgers.make_scope(session, "county", county, AS_OF)))
        results["county_aggregate"] = sec
        out(f"[{name}] county aggregate: {sec:.3f} s (enrolled {sum(agg.enrolled.values())}, "
            f"open cases {sum(sum(s.values()) for s in agg.states.values())}, {len(agg.children)} townships)")
        sec, agg = timed(lambda: ledgers.aggregate(
            session, ledgers.make_scope(session, "prefecture", data.prefecture_id, AS_OF)))
        results["prefecture_aggregate"] = sec
        out(f"[{name}] prefecture aggregate: {sec:.3f} s (enrolled {sum(agg.enrolled.values())}, "
            f"open cases {sum(sum(s.values()) for s in agg.states.values())}, {len(agg.children)} counties)")
        scope = ledgers.make_scope(session, "prefecture", data.prefecture_id, AS_OF)
        total = ledgers.ledger_page(session, scope, limit=1).total
        sec, xlsx, cpu = timed_cpu(lambda: ledgers.ledger_xlsx(session, scope, limit=10_000, user="bench"))
        results["xlsx_10000"] = sec
        out(f"[{name}] XLSX export of {min(total, 10_000)} rows (ledger has {total}): {sec:.3f} s "
            f"(client CPU {cpu:.3f} s), {len(xlsx) / 1e6:.1f} MB")
        session.rollback()
    finally:
        session.close()
        engine.dispose()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pupils", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="50,000 pupils and 2,000 cases")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", PG_URL))
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file and the PostgreSQL schema")
    args = parser.parse_args(argv)
    if args.quick:
        args.pupils, args.cases = 50_000, 2_000
    t0 = time.perf_counter()
    out(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    data = Data(args.pupils, args.cases)
    data.build_orgs()
    # pupils are streamed into each database; the case sample only needs their school and grade
    data.pupil_class = [(i, data.classes[i % len(data.classes)][1], data.classes[i % len(data.classes)][2])
                        for i in range(1, args.pupils + 1)]
    cases, events, docs = data.cases_and_events()
    out(f"synthetic prefecture: {len(data.county_ids)} counties, {len(data.schools)} schools, "
        f"{len(data.classes)} classes, {args.pupils} pupils, {len(cases)} cases, {len(events)} events, "
        f"{len(docs)} notices ({time.perf_counter() - t0:.1f} s to generate cases)")
    all_results = {}
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if name == "sqlite":
            path = Path(f"/tmp/bench_ledger_{os.getpid()}.db")
            try:
                all_results[name] = run_engine(name, f"sqlite:///{path}", data, cases, events, docs)
            finally:
                if not args.keep:
                    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                        p.unlink(missing_ok=True)
        elif name == "postgresql":
            schema = f"bench_ledger_{os.getpid()}"
            admin = make_engine(args.pg_url)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = normalise_url(args.pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
            try:
                all_results[name] = run_engine(name, url.render_as_string(hide_password=False), data, cases,
                                               events, docs)
            finally:
                if not args.keep:
                    with admin.begin() as conn:
                        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
        else:
            out(f"unknown engine {name!r}; use sqlite and/or postgresql")
            return 2
    out("")
    out(f"{'operation':<22}{'engine':<12}{'seconds':>9}{'target':>9}  verdict")
    for name, res in all_results.items():
        for op, sec in res.items():
            target = TARGETS.get(op, {}).get(name)
            verdict = "-" if target is None else ("meets" if sec <= target else "MISSES")
            out(f"{op:<22}{name:<12}{sec:>9.3f}{(f'{target:.1f}' if target else '-'):>9}  {verdict}")
    out(f"total wall time {time.perf_counter() - t0:.0f} s; load average now {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs (figures are medians of 3 runs after a warm-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
