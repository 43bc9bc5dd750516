"""Load test of the real service: N parallel clients mixing reads, issuing, DOCX uploads, scans and
ledgers against gunicorn + job workers on PostgreSQL + Redis, for a bounded time.

    .venv/bin/python -m bench.load --clients 8 16 --duration 60

For each client count the service is started afresh on a new PostgreSQL database (demo county
loaded, migrations run) with its own store, Redis queue name, gunicorn (``--web-workers`` ×
``--threads``) and ``--job-workers`` job processes. Each client is a loop over a weighted mix
(``--mix``): ``read`` (case list, a case, pupils), ``ledger`` (the county ledger), ``issue`` (a
限期返校 notice for a case: DOCX + PDF through LibreOffice, a document number), ``upload`` (a
returned DOCX, read in the request) and ``scan`` (a page image of an issued notice: 202, read by a
job). Printed: requests/s per kind, p50/p95/p99 latency, errors (must be 0), peak resident memory per
process kind (web, job worker, soffice — and soffice's first and last sample, which should be
flat), then the integrity checks after the queue drained: every upload answered has its row and
its stored file, every job finished exactly once (done, one attempt, none left queued/running), no
page read twice, document numbers gapless per issuer, form family and year.

Exit status 1 when a request failed or a check did not hold. ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
NOTICE = {"persuasion_count": 3, "report_place": "学校教务处", "contact_person": "李明",
          "contact_phone": "13800001111", "cc": "学校、村委会", "handler_name": "赵强"}
KINDS = ("read", "ledger", "issue", "upload", "scan")


# ---- the service under test --------------------------------------------------------------------------

class Service:
    """A fresh database, store and queue; gunicorn and job workers as child processes."""

    def __init__(self, args, label: str):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix=f"baoxue-load-{label}-"))
        self.dbname = f"baoxue_load_{label}_{uuid.uuid4().hex[:6]}"
        base = args.database_url.rsplit("/", 1)[0]
        self.admin_url = args.database_url
        self.url = f"{base}/{self.dbname}"
        self.port = args.port
        self.env = {**os.environ, "DATABASE_URL": self.url, "REDIS_URL": args.redis_url,
                    "BAOXUE_HUEY_NAME": f"load-{uuid.uuid4().hex[:8]}", "BAOXUE_OUTPUT_DIR": str(self.tmp / "out"),
                    "BAOXUE_PDF_PREWARM": "1", "BAOXUE_PDF_WORKERS": str(args.pdf_workers),
                    "BAOXUE_JOB_WORKERS": str(args.job_threads)}
        self.procs: dict[str, list[subprocess.Popen]] = {"web": [], "jobs": []}
        self.base = f"http://127.0.0.1:{self.port}/api/v1"

    def _sql_admin(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        from cases.store.db import normalise_url

        eng = create_engine(normalise_url(self.admin_url), isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text(statement))
        eng.dispose()

    def start(self) -> str:
        self._sql_admin(f'CREATE DATABASE "{self.dbname}"')
        log = open(self.tmp / "setup.log", "w")
        subprocess.run([PY, "-m", "cases.demo"], cwd=ROOT, env=self.env, check=True, stdout=log, stderr=log)
        token = subprocess.run([PY, "-m", "flask", "--app", "app", "token", "create", "demo.bureau", "--expires", "1"],
                               cwd=ROOT, env=self.env, check=True, capture_output=True, text=True).stdout.strip()
        token = token.splitlines()[-1].strip()
        web_log = open(self.tmp / "web.log", "w")
        # workers, threads, timeout: the service's gunicorn.conf.py (read from ROOT), unless given here
        given = [*(["--workers", str(self.args.web_workers)] if self.args.web_workers else []),
                 *(["--threads", str(self.args.threads)] if self.args.threads else [])]
        self.procs["web"].append(subprocess.Popen(
            [PY, "-m", "gunicorn", *given, "--bind", f"127.0.0.1:{self.port}", "app:create_app()"],
            cwd=ROOT, env=self.env, stdout=web_log, stderr=web_log, start_new_session=True))
        for i in range(self.args.job_workers):
            jl = open(self.tmp / f"jobs-{i}.log", "w")
            self.procs["jobs"].append(subprocess.Popen([PY, "-m", "cases.store.jobs"], cwd=ROOT, env=self.env,
                                                       stdout=jl, stderr=jl, start_new_session=True))
        deadline = time.time() + 120
        while True:
            try:
                if requests.get(f"{self.base}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline or self.procs["web"][0].poll() is not None:
                raise RuntimeError(f"server did not start; see {self.tmp / 'web.log'}")
            time.sleep(0.5)
        return token

    def stop(self, keep: bool = False) -> None:
        for group in self.procs.values():
            for p in group:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
        for group in self.procs.values():
            for p in group:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        if not keep:
            try:
                self._sql_admin(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            except Exception as e:  # noqa: BLE001 - best effort cleanup, reported
                print(f"  (could not drop {self.dbname}: {e})")


# ---- resident memory per process kind ---------------------------------------------------------------

def _proc_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _is_renderer(pid: int) -> bool:
    """A renderer process of a web worker (``cases.documents.render_pool``: multiprocessing spawn)."""
    try:
        return b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Every second: the largest web worker, renderer, job worker and soffice (soffice.bin) by RSS,
    found in the process trees of gunicorn and the job workers (soffice is a child of a renderer,
    or of the web or job process that converts itself). Each soffice.bin is followed by its pid:
    its first and last resident size, so growth and recycling show."""

    def __init__(self, service: Service):
        super().__init__(daemon=True)
        self.service = service
        self.stop_event = threading.Event()
        self.peak: dict[str, float] = defaultdict(float)
        self.soffice_series: list[float] = []
        self.soffice_pids: dict[int, list[float]] = {}  # pid -> [first, last, peak] MiB

    def sample(self) -> dict[str, float]:
        now: dict[str, float] = defaultdict(float)
        for kind, procs in self.service.procs.items():
            for root in procs:
                for pid in _proc_tree(root.pid):
                    name = _comm(pid)
                    if name.startswith("soffice") or name == "oosplash" or name == "nice":
                        if name == "soffice.bin":
                            rss = _rss_mb(pid)
                            now["soffice"] = max(now["soffice"], rss)
                            seen = self.soffice_pids.setdefault(pid, [rss, rss, rss])
                            seen[1], seen[2] = rss, max(seen[2], rss)
                    elif kind == "web" and _is_renderer(pid):
                        now["renderer"] = max(now["renderer"], _rss_mb(pid))
                    elif pid != root.pid or kind == "jobs":
                        now[kind] = max(now[kind], _rss_mb(pid))
        return now

    def run(self) -> None:
        while not self.stop_event.is_set():
            now = self.sample()
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)
            if now.get("soffice"):
                self.soffice_series.append(now["soffice"])
            self.stop_event.wait(1.0)


# ---- the clients ---------------------------------------------------------------------------------------

class Fixture:
    """What the clients need, made once through the API before the run: cases, a returned DOCX and
    a page image of an issued notice."""

    def __init__(self, base: str, token: str):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        self.base = base
        cases = s.get(f"{base}/cases?limit=500", timeout=60).json()["items"]
        self.case_ids = [c["id"] for c in cases]
        self.issue_case = next(c["id"] for c in cases if c["state"] not in ("CLOSED",))
        self.county = s.get(f"{base}/orgs", params={"kind": "county"}, timeout=60).json()["items"][0]["id"]
        doc = s.post(f"{base}/cases/{self.issue_case}/documents", timeout=300,
                     json={"form": "guardian_notice", "variant": "xianqi", "data": NOTICE})
        doc.raise_for_status()
        doc = doc.json()
        self.upload_org = doc["issuer_id"]
        self.docx = s.get(f"{base}/documents/{doc['id']}/docx", timeout=60).content
        pdf = s.get(f"{base}/documents/{doc['id']}/pdf", timeout=60).content
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "d.pdf").write_bytes(pdf)
            subprocess.run(["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", str(Path(tmp) / "d.pdf"),
                            str(Path(tmp) / "p")], check=True)
            self.page_png = next(Path(tmp).glob("p*.png")).read_bytes()


class Client(threading.Thread):
    def __init__(self, n: int, fx: Fixture, token: str, mix: dict[str, float], until: float, results: list):
        super().__init__(daemon=True, name=f"client-{n}")
        self.rng = random.Random(n)
        self.fx = fx
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.kinds, self.weights = list(mix), list(mix.values())
        self.until = until
        self.results = results

    def request(self, kind: str):
        fx, s, rng = self.fx, self.session, self.rng
        if kind == "read":
            which = rng.randrange(3)
            if which == 0:
                return s.get(f"{fx.base}/cases", timeout=300), None
            if which == 1:
                return s.get(f"{fx.base}/cases/{rng.choice(fx.case_ids)}", timeout=300), None
            return s.get(f"{fx.base}/pupils", params={"limit": 20, "offset": rng.randrange(0, 280)}, timeout=300), None
        if kind == "ledger":
            return s.get(f"{fx.base}/ledgers/county", params={"org_id": fx.county, "limit": 50}, timeout=300), None
        if kind == "issue":
            return s.post(f"{fx.base}/cases/{fx.issue_case}/documents", timeout=300,
                          json={"form": "guardian_notice", "variant": "xianqi", "data": NOTICE}), None
        if kind == "upload":
            r = s.post(f"{fx.base}/uploads", timeout=300, data={"org_id": str(fx.upload_org)},
                       files={"file": ("returned.docx", io.BytesIO(fx.docx))})
            return r, "upload"
        r = s.post(f"{fx.base}/scans", timeout=300, data={"org_id": str(fx.upload_org)},
                   files={"file": ("scan.png", io.BytesIO(fx.page_png), "image/png")})
        return r, "scan"

    def run(self) -> None:
        while time.monotonic() < self.until:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            t0 = time.perf_counter()
            busy = 0
            while True:
                try:
                    r, _ = self.request(kind)
                    status, body = r.status_code, (r.json() if r.headers.get("Content-Type", "").startswith(
                        "application/json") else {})
                except (requests.RequestException, ValueError) as e:
                    status, body = 0, {"error": str(e)}
                # The service is full (renderer queue) and says when to come back: a client waits
                # that long and asks again, as a person would. Counted apart, not an error; the
                # latency is the whole wait. After 300 s of refusals (the request timeout) it fails.
                if (status == 503 and body.get("error") == "renderer_busy"
                        and time.perf_counter() - t0 < 300):
                    busy += 1
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    # gunicorn closes a connection idle for longer than its keep-alive (2 s): ask
                    # again on a fresh one rather than on one the server is closing
                    self.session.close()
                    continue
                break
            self.results.append((kind, time.perf_counter() - t0, status, body.get("upload_id") if 0 < status < 300
                                 else body.get("message") or body.get("error"), busy))


# ---- checks after the run -----------------------------------------------------------------------------

def integrity(service: Service, upload_ids: set[int], drain_s: float = 180) -> dict:
    from sqlalchemy import create_engine, func, select

    from cases.returns.models import ReturnPage
    from cases.store.db import normalise_url
    from cases.store.models import Document, Job, Upload

    eng = create_engine(normalise_url(service.url))
    out: dict = {}
    deadline = time.time() + drain_s
    with eng.connect() as c:
        while True:
            pending = c.execute(select(func.count()).select_from(Job).where(
                Job.status.in_(("queued", "running")))).scalar_one()
            if not pending or time.time() > deadline:
                break
            c.rollback()
            time.sleep(2)
        rows = {r.id: r for r in c.execute(select(Upload.id, Upload.stored_path))}
        missing_rows = sorted(upload_ids - set(rows))
        store = service.tmp / "out" / "store"
        missing_files = sorted(i for i, r in rows.items() if not (store / r.stored_path).exists())
        jobs = c.execute(select(Job.status, Job.attempts, Job.kind)).all()
        by_status: dict[str, int] = defaultdict(int)
        for j in jobs:
            by_status[j.status] += 1
        reran = sum(1 for j in jobs if j.attempts != 1)
        dup_pages = c.execute(select(ReturnPage.upload_id, ReturnPage.page_index, func.count()).group_by(
            ReturnPage.upload_id, ReturnPage.page_index).having(func.count() > 1)).all()
        gaps = []
        series: dict[tuple, list[int]] = defaultdict(list)
        for d in c.execute(select(Document.org_id, Document.family, Document.year, Document.seq).where(
                Document.seq.is_not(None))):
            series[(d.org_id, d.family, d.year)].append(d.seq)
        for key, seqs in series.items():
            seqs.sort()
            if seqs != list(range(1, len(seqs) + 1)):
                gaps.append({"series": list(key), "numbers": len(seqs), "max": seqs[-1],
                             "duplicates": len(seqs) - len(set(seqs))})
    eng.dispose()
    out = {"uploads_answered": len(upload_ids), "uploads_without_row": missing_rows,
           "rows_without_file": missing_files, "jobs": dict(by_status), "jobs_not_run_exactly_once": reran,
           "pages_read_twice": len(dup_pages), "number_series": len(series), "number_gaps": gaps}
    out["ok"] = (not missing_rows and not missing_files and set(by_status) <= {"done"} and reran == 0
                 and not dup_pages and not gaps)
    return out


# ---- one run ----------------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_once(args, clients: int) -> dict:
    service = Service(args, f"c{clients}")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    workers, threads = args.web_workers or conf["workers"], args.threads or conf["threads"]
    print(f"\n== {clients} clients, {args.duration:.0f} s  (gunicorn {workers}×{threads}, "
          f"{args.job_workers} job workers, {args.pdf_workers} soffice per process; PostgreSQL + Redis)")
    try:
        token = service.start()
        fx = Fixture(service.base, token)
        sampler = RssSampler(service)
        sampler.start()
        results: list = []
        until = time.monotonic() + args.duration
        threads = [Client(i, fx, token, args.mix, until, results) for i in range(clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        checks = integrity(service, {r[3] for r in results if r[0] in ("upload", "scan") and r[2] in (201, 202)
                                     and isinstance(r[3], int)})
        sampler.stop_event.set()
        sampler.join(5)
    finally:
        service.stop(keep=args.keep)
    per: dict[str, dict] = {}
    errors = []
    for kind in KINDS:
        rows = [r for r in results if r[0] == kind]
        if not rows:
            continue
        lat = [r[1] * 1000 for r in rows]
        bad = [r for r in rows if not 200 <= r[2] < 300]
        errors += [f"{kind}: HTTP {r[2]} {r[3]}" for r in bad]
        per[kind] = {"requests": len(rows), "rps": round(len(rows) / elapsed, 2), "p50_ms": round(pct(lat, 50)),
                     "p95_ms": round(pct(lat, 95)), "p99_ms": round(pct(lat, 99)), "errors": len(bad),
                     "busy_503": sum(r[4] for r in rows)}
    so = sampler.soffice_series
    memory = {k: round(v) for k, v in sampler.peak.items()}
    if so:
        memory["soffice_first"], memory["soffice_last"] = round(so[0]), round(so[-1])
    soffice = [{"pid": pid, "first": round(v[0]), "last": round(v[1]), "peak": round(v[2])}
               for pid, v in sorted(sampler.soffice_pids.items())]
    total = sum(v["requests"] for v in per.values())
    print(f"{'kind':8} {'req':>6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} {'busy':>5}")
    for kind, v in per.items():
        print(f"{kind:8} {v['requests']:6d} {v['rps']:7.2f} {v['p50_ms']:7d} {v['p95_ms']:7d} {v['p99_ms']:7d} "
              f"{v['errors']:6d} {v['busy_503']:5d}")
    print(f"{'all':8} {total:6d} {total / elapsed:7.2f}   (busy: 503 renderer_busy answers, waited out and retried)")
    print("peak RSS MiB: " + ", ".join(f"{k} {v}" for k, v in memory.items()))
    print(f"soffice processes seen: {len(soffice)} (first/last/peak MiB each: "
          + ", ".join(f"{x['first']}/{x['last']}/{x['peak']}" for x in soffice) + ")")
    print("integrity: " + json.dumps(checks, ensure_ascii=False))
    for e in errors[:10]:
        print("  error:", e)
    return {"clients": clients, "duration_s": round(elapsed, 1), "total_rps": round(total / elapsed, 2),
            "kinds": per, "peak_rss_mb": memory, "soffice": soffice, "integrity": checks, "errors": len(errors),
            "ok": not errors and checks["ok"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--database-url", default=os.environ.get("BAOXUE_LOAD_DATABASE_URL", DEFAULT_PG),
                    help="PostgreSQL server (a database on it is created and dropped per run)")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--web-workers", type=int, default=None, help="default: gunicorn.conf.py")
    ap.add_argument("--threads", type=int, default=None, help="default: gunicorn.conf.py")
    ap.add_argument("--job-workers", type=int, default=2)
    ap.add_argument("--job-threads", type=int, default=1)
    ap.add_argument("--pdf-workers", type=int, default=1)
    ap.add_argument("--mix", default="read=50,ledger=10,issue=20,upload=10,scan=10",
                    help="weights per kind: read, ledger, issue, upload, scan")
    ap.add_argument("--keep", action="store_true", help="keep each run's database (for a look afterwards)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    args.mix = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    runs = [run_once(args, n) for n in args.clients]
    if args.json:
        args.json.write_text(json.dumps(runs, ensure_ascii=False, indent=1), encoding="utf-8")
    bad = [r["clients"] for r in runs if not r["ok"]]
    print("\nall runs clean" if not bad else f"\nNOT CLEAN: runs with {bad} clients")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
