"""Background jobs: Huey plus a ``Job`` progress row per job, with a lease that outlives no worker.

Huey is built at app start by ``init_jobs(config)``: a SQLite-backed queue (``<output>/huey.db``)
on one machine by default, Redis-backed when ``REDIS_URL`` is set (workers on many machines), and
immediate (run in-process, in-memory queue) when ``HUEY_IMMEDIATE`` is true, as in tests.

A job kind is a plain function registered with ``@job_task("kind")``; it receives a
``JobContext`` and only ids and paths (never ORM rows: a worker opens its own session). Callers
start a job with ``submit(session, "kind", *args)`` and poll the ``Job`` row it returns the id of.
The arguments are kept on the row (``payload``) so that the job can be queued again.

Surviving workers (a queue hands a message out once: a worker killed mid-job takes it along):

* **claim** — a worker runs a job only after moving its row from ``queued`` to ``running`` in one
  conditional UPDATE that also counts the attempt and writes a lease (``lease_until``) and a
  fencing token (``worker``). A second message for the same job finds the row taken and is dropped,
  so a job never runs twice at once and a finished job never runs again.
* **heartbeat** — while the task runs a thread renews the lease every third of its length;
  progress, finish and fail are written only while the token still holds the lease (a worker
  that lost it stops at its next progress call and its result is discarded).
* **reaper** (``reap``) — run by every worker on a timer and by the daily sweep: a ``running`` job
  whose lease expired (its worker died or hung) is put back to ``queued`` and re-enqueued, up to
  ``JOB_MAX_ATTEMPTS`` attempts; then it is marked ``failed`` with a reason the person polling it can
  read. A ``queued`` job whose message is missing from the queue (lost with a flushed Redis, or an
  enqueue that failed after the commit) is enqueued again.

Every job kind must therefore be idempotent: run twice, it leaves what running once leaves
(scan pages and review items are unique per page, batch items per ``Document.request_key``).

Worker: ``python -m cases.store.jobs``, with the same environment as the web service (its
``__main__`` block passes the settings in).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from cases.store.db import make_engine, make_session_factory, session_scope
from cases.store.models import Job, Upload, utcnow
from cases.store.storage import Store, sha256_bytes
from forms.errors import NotFound

log = logging.getLogger(__name__)

TaskFunc = Callable[..., str | None]
_PAYLOAD_TYPES = (str, int, float, bool, type(None))
# Modules defining job kinds, imported by the worker (python -m cases.store.jobs) before it consumes.
JOB_MODULES = ("cases.documents.batch", "cases.returns.intake", "cases.notify.scheduler",
               "cases.dossier.jobs")

DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_REAP_INTERVAL_S = 15.0
# A queued job older than this whose message is not in the queue is enqueued again.
DEFAULT_LOST_AFTER_S = 600.0
# Longest pause between two polls of an empty queue by an idle worker (SQLite queue).
DEFAULT_POLL_MAX_S = 0.5


@dataclass
class _State:
    huey: Huey | None = None
    session_factory: sessionmaker[Session] | None = None
    output_dir: Path | None = None
    wrapped: dict[str, Any] = field(default_factory=dict)
    lease_s: float = DEFAULT_LEASE_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    reap_interval_s: float = DEFAULT_REAP_INTERVAL_S
    lost_after_s: float = DEFAULT_LOST_AFTER_S


_TASKS: dict[str, TaskFunc] = {}
# Called with the session factory before each job runs (e.g. ``cases.engine.installed`` brings the
# region profiles installed in the database into this process).
_BEFORE_JOB: list[Callable[[sessionmaker[Session]], None]] = []


def before_each_job(hook: Callable[[sessionmaker[Session]], None]) -> None:
    """Run ``hook(session_factory)`` before each tracked job (registered once per hook)."""
    if hook not in _BEFORE_JOB:
        _BEFORE_JOB.append(hook)
_state = _State()


class LeaseLost(Exception):
    """This worker no longer holds the job's lease (the reaper gave the job to another worker).

    Not a BaoxueError: it never reaches a person; the task stops and its result is discarded."""


def _setting(config, name: str, default=None):
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def init_jobs(config, *, session_factory: sessionmaker[Session] | None = None) -> Huey:
    """Build the Huey instance and the session factory used by job-row updates.

    ``config`` is a Config class/object or a mapping (Flask ``app.config``) with OUTPUT_DIR,
    DATABASE_URL, REDIS_URL, HUEY_IMMEDIATE and optionally HUEY_NAME, JOB_LEASE_SECONDS,
    JOB_MAX_ATTEMPTS, JOB_REAP_INTERVAL_SECONDS.
    """
    name = _setting(config, "HUEY_NAME") or "baoxue"
    immediate = bool(_setting(config, "HUEY_IMMEDIATE", False))
    output_dir = Path(_setting(config, "OUTPUT_DIR") or "output")
    redis_url = _setting(config, "REDIS_URL")
    if redis_url:
        huey: Huey = RedisHuey(name, url=redis_url, immediate=immediate, results=False)
    elif immediate:
        huey = MemoryHuey(name, immediate=True, results=False)
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(name, filename=str(output_dir / "huey.db"), results=False)
    if session_factory is None:
        session_factory = make_session_factory(make_engine(_setting(config, "DATABASE_URL")))
    _state.huey = huey
    _state.session_factory = session_factory
    _state.output_dir = output_dir
    _state.lease_s = float(_setting(config, "JOB_LEASE_SECONDS", None) or DEFAULT_LEASE_S)
    _state.max_attempts = int(_setting(config, "JOB_MAX_ATTEMPTS", None) or DEFAULT_MAX_ATTEMPTS)
    _state.reap_interval_s = float(_setting(config, "JOB_REAP_INTERVAL_SECONDS", None) or DEFAULT_REAP_INTERVAL_S)
    _state.lost_after_s = float(_setting(config, "JOB_LOST_AFTER_SECONDS", None) or DEFAULT_LOST_AFTER_S)
    _state.wrapped = {}
    for kind in _TASKS:
        _wrap(kind)
    for task_name in _PLAIN:
        _wrap_plain(task_name)
    for task_name in _PERIODIC:
        _wrap_periodic(task_name)
    log.info("jobs: %s queue %r%s", type(huey).__name__, name, " (immediate)" if immediate else "")
    return huey


def get_huey() -> Huey:
    """The Huey instance built by ``init_jobs`` (the app factory and the worker call it first,
    with their settings: this module never reads the configuration itself)."""
    if _state.huey is None:
        raise RuntimeError("后台任务未初始化：先以配置调用 cases.store.jobs.init_jobs(config)")
    return _state.huey


def _factory() -> sessionmaker[Session]:
    get_huey()
    return _state.session_factory


# ---- job rows -----------------------------------------------------------------------------------

def create_job(session: Session, kind: str, total: int = 0, *, org_id: int | None = None,
               payload: list | None = None) -> Job:
    """Add a queued ``Job`` row to the session (the caller commits)."""
    job = Job(id=str(uuid.uuid4()), kind=kind, total=total, org_id=org_id, status="queued",
              payload=list(payload or []), attempts=0)
    session.add(job)
    return job


def _update(job_id: str, token: str | None = None, **values) -> bool:
    """Write ``values`` on the job row; with ``token``, only while that claim holds the job.
    Returns whether the row was written."""
    conditions = [Job.id == job_id]
    if token is not None:
        conditions += [Job.worker == token, Job.status == "running"]
    with session_scope(_factory()) as s:
        res = s.execute(update(Job).where(*conditions).values(updated_at=utcnow(), **values)
                        .execution_options(synchronize_session=False))
        if res.rowcount == 1:
            return True
        if token is None or s.get(Job, job_id) is None:
            raise NotFound(f"没有任务 {job_id}", job=job_id)
        return False


def progress(job_id: str, done: int, *, total: int | None = None) -> None:
    """Record how many of ``total`` items are done (committed at once, for pollers)."""
    values: dict[str, Any] = {"done": done, "status": "running"}
    if total is not None:
        values["total"] = total
    _update(job_id, **values)


def finish(job_id: str, result_path: str | None = None) -> None:
    """Mark the job done, with the path of its result file if it has one."""
    _update(job_id, status="done", result_path=result_path, error=None, lease_until=None)


def fail(job_id: str, error: str) -> None:
    """Mark the job failed with a message a person can act on."""
    _update(job_id, status="failed", error=error, lease_until=None)


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"没有任务 {job_id}", job=job_id)
    return job


# ---- claim, lease and heartbeat ---------------------------------------------------------------------

def _claim(job_id: str) -> str | None:
    """Take a queued job for this worker; the fencing token, or None when it is not queued (done,
    failed, or running under another worker's live lease)."""
    token = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    now = utcnow()
    with session_scope(_factory()) as s:
        res = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                        .values(status="running", attempts=Job.attempts + 1, worker=token, updated_at=now,
                                lease_until=now + dt.timedelta(seconds=_state.lease_s))
                        .execution_options(synchronize_session=False))
        return token if res.rowcount == 1 else None


class _Heartbeat:
    """Renews a claimed job's lease every third of its length until stopped; ``lost`` is set when
    the row no longer carries this worker's token (the reaper gave the job away)."""

    def __init__(self, job_id: str, token: str, lease_s: float):
        self.job_id, self.token, self.lease_s = job_id, token, lease_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                until = utcnow() + dt.timedelta(seconds=self.lease_s)
                if not _update(self.job_id, self.token, lease_until=until):
                    log.warning("job %s: lease lost to another worker", self.job_id)
                    self.lost.set()
                    return
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the heartbeat
                log.exception("job %s: lease renewal failed; retrying", self.job_id)


# ---- tasks ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobContext:
    """What a task function gets besides its ids and paths."""

    job_id: str
    output_dir: Path
    token: str | None = None

    def progress(self, done: int, total: int | None = None) -> None:
        """Record progress; raises LeaseLost when another worker has been given this job."""
        values: dict[str, Any] = {"done": done}
        if total is not None:
            values["total"] = total
        if self.token is None:
            progress(self.job_id, done, total=total)
        elif not _update(self.job_id, self.token, **values):
            raise LeaseLost(self.job_id)

    def session(self):
        """A unit of work on the job database (``with ctx.session() as s: ...``)."""
        return session_scope(_factory())


def job_task(kind: str) -> Callable[[TaskFunc], TaskFunc]:
    """Register ``fn(ctx: JobContext, *ids_and_paths) -> result_path | None`` as job ``kind``.

    The function must be idempotent (module docstring): the reaper runs it again after a crash."""

    def register(fn: TaskFunc) -> TaskFunc:
        _TASKS[kind] = fn
        if _state.huey is not None:
            _wrap(kind)
        return fn

    return register


# ---- plain and periodic tasks (no Job row: their own tables record what they did) ------------------

_PLAIN: dict[str, Callable[..., Any]] = {}
_PERIODIC: dict[str, tuple[Callable[[], Any], dict]] = {}


def queue_task(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(*ids)`` as a plain queue task ``name`` (started with ``enqueue_task``). It keeps
    its own record (e.g. a delivery row) and must be idempotent: a message may arrive twice."""

    def register(fn):
        _PLAIN[name] = fn
        if _state.huey is not None:
            _wrap_plain(name)
        return fn

    return register


def periodic_task(name: str, **cron: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register ``fn()`` to run on the worker by the crontab ``cron`` (``minute="*/5"``...); the
    consumer started by ``python -m cases.store.jobs`` runs it. It must be idempotent."""

    def register(fn):
        _PERIODIC[name] = (fn, cron)
        if _state.huey is not None:
            _wrap_periodic(name)
        return fn

    return register


# ---- warm-up: what a worker loads once at start instead of in its first job ---------------------------

_WARMERS: dict[str, Callable[[], Any]] = {}


def worker_warmup(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register ``fn()`` to run once when a worker starts, before it takes jobs: models, sessions and
    tables that every job of a kind needs (loading them inside the first job made it seconds slower,
    and made per-page timings of that job dishonest)."""

    def register(fn):
        _WARMERS[name] = fn
        return fn

    return register


def warmups() -> list[str]:
    """Names of the registered warm-ups (of the imported modules)."""
    return list(_WARMERS)


def warm_up(names: Collection[str] | None = None) -> dict[str, float]:
    """Run the registered warm-ups (``names``, default all) and return seconds per warm-up. One that
    fails is logged and skipped: the job that needs it loads it itself, or fails with its reason."""
    import time

    took: dict[str, float] = {}
    for name, fn in _WARMERS.items():
        if names is not None and name not in names:
            continue
        t0 = time.perf_counter()
        try:
            fn()
        except Exception:
            log.exception("warm-up %s failed; its jobs will load what they need themselves", name)
            continue
        took[name] = round(time.perf_counter() - t0, 3)
    if took:
        log.info("worker warm-up: %s", ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    return took


def periodic_tasks() -> dict[str, dict]:
    """The registered periodic tasks and their crontab (of the imported modules)."""
    return {name: dict(cron) for name, (_fn, cron) in _PERIODIC.items()}


def _wrap_plain(name: str):
    task = _state.huey.task(name=f"task_{name}")(_PLAIN[name])
    _state.wrapped[f"task:{name}"] = task
    return task


def _wrap_periodic(name: str):
    from huey import crontab

    fn, cron = _PERIODIC[name]
    task = _state.huey.periodic_task(crontab(**cron), name=f"periodic_{name}")(fn)
    _state.wrapped[f"periodic:{name}"] = task
    return task


def enqueue_task(name: str, *args, delay: float | None = None) -> bool:
    """Queue plain task ``name`` (after ``delay`` seconds). In immediate mode (tests) a task without
    delay runs at once and a delayed one is left to the periodic re-run that picks it up; returns
    whether it was queued or run."""
    huey = get_huey()
    task = _state.wrapped.get(f"task:{name}") or _wrap_plain(name)
    if delay:
        if huey.immediate:
            return False
        task.schedule(args=args, delay=delay)
        return True
    task(*args)
    return True


def kinds() -> dict[str, TaskFunc]:
    """Every registered job kind and its task function (those of imported modules)."""
    return dict(_TASKS)


def _run_tracked(kind: str, job_id: str, *args) -> None:
    fn = _TASKS[kind]
    token = _claim(job_id)
    if token is None:
        log.info("job %s (%s) is not queued any more (done, failed or running elsewhere): message dropped",
                 job_id, kind)
        return
    ctx = JobContext(job_id=job_id, output_dir=_state.output_dir or Path("output"), token=token)
    with _Heartbeat(job_id, token, _state.lease_s) as beat:
        try:
            for hook in _BEFORE_JOB:
                hook(_state.session_factory)
            result_path = fn(ctx, *args)
        except LeaseLost:
            log.warning("job %s (%s): stopped, another worker has it", job_id, kind)
            return
        except Exception as e:
            # Recorded on the row for the person polling it, then re-raised for Huey's log.
            if not _update(job_id, token, status="failed", lease_until=None,
                           error=f"{getattr(e, 'message', None) or e} ({type(e).__name__})"):
                log.warning("job %s failed after losing its lease: %s", job_id, e)
            raise
    if beat.lost.is_set() or not _update(job_id, token, status="done", result_path=result_path, error=None,
                                         lease_until=None):
        log.warning("job %s (%s) finished after losing its lease: result discarded", job_id, kind)


def _wrap(kind: str):
    huey = _state.huey

    def run(job_id: str, *args) -> None:
        _run_tracked(kind, job_id, *args)

    run.__module__ = __name__
    run.__qualname__ = run.__name__ = f"job_{kind}"
    task = huey.task(name=f"job_{kind}")(run)
    _state.wrapped[kind] = task
    return task


def _enqueue(kind: str, job_id: str, payload: list) -> None:
    get_huey()
    task = _state.wrapped.get(kind) or _wrap(kind)
    task(job_id, *payload)


def submit(session: Session, kind: str, *args, total: int = 0, org_id: int | None = None) -> str:
    """Create the job's row, commit it (the worker must see it), enqueue the task; return the id.

    ``args`` must be ids and paths (str, int, float, bool, None, Path).
    """
    if kind not in _TASKS:
        raise NotFound(f"没有此类后台任务：{kind}", kind=kind)
    payload = []
    for a in args:
        if isinstance(a, Path):
            a = str(a)
        if not isinstance(a, _PAYLOAD_TYPES):
            raise TypeError(f"job payloads carry ids and paths, not {type(a).__name__}")
        payload.append(a)
    job = create_job(session, kind, total, org_id=org_id, payload=payload)
    session.commit()
    _enqueue(kind, job.id, payload)
    return job.id


# ---- the reaper --------------------------------------------------------------------------------------

def gave_up_message(attempts: int) -> str:
    """What a person reads on a job the reaper stopped retrying."""
    return (f"后台任务在处理中断了{attempts}次（工作进程退出或失去联系），已停止重试。"
            "上传的文件已保存，请稍后重新提交；如仍失败，请联系管理员查看工作进程日志")


def reap(session_factory: sessionmaker[Session] | None = None, *, now: dt.datetime | None = None) -> dict:
    """Requeue (or, after ``JOB_MAX_ATTEMPTS``, fail) every running job whose lease expired, and
    enqueue again the queued jobs whose message is lost. Safe to run from several processes at
    once: each change is a conditional UPDATE, and a duplicate message is dropped by the claim.
    Returns {"requeued": [...], "failed": [...], "resent": [...]} (job ids)."""
    factory = session_factory or _factory()
    now = now or utcnow()
    lease = dt.timedelta(seconds=_state.lease_s)
    expired = or_(Job.lease_until < now, and_(Job.lease_until.is_(None), Job.updated_at < now - lease))
    out: dict[str, list[str]] = {"requeued": [], "failed": [], "resent": []}
    with factory() as s:
        stale = s.execute(select(Job.id, Job.kind, Job.attempts, Job.payload)
                          .where(Job.status == "running", expired)).all()
    for job_id, kind, attempts, payload in stale:
        attempts = int(attempts or 0)
        if attempts >= _state.max_attempts:
            values = {"status": "failed", "error": gave_up_message(attempts), "lease_until": None}
        else:
            values = {"status": "queued", "worker": None, "lease_until": None}
        with session_scope(factory) as s:
            res = s.execute(update(Job).where(Job.id == job_id, Job.status == "running", Job.attempts == attempts,
                                              expired)
                            .values(updated_at=now, **values).execution_options(synchronize_session=False))
            taken = res.rowcount == 1
        if not taken:
            continue  # renewed meanwhile, or another reaper was first
        if values["status"] == "failed":
            log.error("job %s (%s): lease expired after %d attempts; marked failed", job_id, kind, attempts)
            out["failed"].append(job_id)
        else:
            log.warning("job %s (%s): lease expired (attempt %d); queued again", job_id, kind, attempts)
            _enqueue(kind, job_id, list(payload or []))
            out["requeued"].append(job_id)
    out["resent"] = _resend_lost(factory, now)
    return out


def _resend_lost(factory: sessionmaker[Session], now: dt.datetime) -> list[str]:
    huey = get_huey()
    if huey.immediate:
        return []
    cutoff = now - dt.timedelta(seconds=_state.lost_after_s)
    with factory() as s:
        old = s.execute(select(Job.id, Job.kind, Job.payload).where(Job.status == "queued", Job.updated_at < cutoff)
                        ).all()
    if not old:
        return []
    pending = {t.args[0] for t in huey.pending() if t.args}
    resent = []
    for job_id, kind, payload in old:
        if job_id in pending:
            continue
        with session_scope(factory) as s:
            res = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued", Job.updated_at < cutoff)
                            .values(updated_at=now).execution_options(synchronize_session=False))
        if res.rowcount == 1:
            log.warning("job %s (%s): queued but not in the queue; enqueued again", job_id, kind)
            _enqueue(kind, job_id, list(payload or []))
            resent.append(job_id)
    return resent


def run_reaper(stop: threading.Event, interval_s: float | None = None) -> None:
    """Reap every ``interval_s`` seconds until ``stop`` is set (the worker runs this on a thread)."""
    interval = interval_s or _state.reap_interval_s
    while True:
        try:
            found = reap()
            if any(found.values()):
                log.info("reaper: %s", found)
        except Exception:  # noqa: BLE001 - the reaper must outlive a database hiccup
            log.exception("reaper run failed; trying again in %.0f s", interval)
        if stop.wait(interval):
            return


# ---- built-in job: verify the stored uploads against their hashes -------------------------------------

@job_task("verify_store")
def verify_store(ctx: JobContext, store_root: str) -> str:
    """Re-hash every stored upload and write a JSON report of missing or altered files."""
    store = Store(Path(store_root))
    with ctx.session() as s:
        rows = [(u.id, u.sha256, u.stored_path) for u in s.scalars(select(Upload).order_by(Upload.id))]
    ctx.progress(0, len(rows))
    problems = []
    for i, (upload_id, digest, rel) in enumerate(rows, 1):
        if not store.exists(rel):
            problems.append({"upload_id": upload_id, "problem": "missing", "path": rel})
        elif sha256_bytes(store.read_bytes(rel)) != digest:
            problems.append({"upload_id": upload_id, "problem": "altered", "path": rel})
        ctx.progress(i)
    out = ctx.output_dir / "reports" / f"verify_store-{ctx.job_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checked": len(rows), "problems": problems}, ensure_ascii=False, indent=1),
                   encoding="utf-8")
    return str(out)


def main(config, secret_problems: Callable[[Mapping], list[str]]) -> None:  # pragma: no cover
    """Run a consumer for the queue of ``config`` (``python -m cases.store.jobs``), with the reaper;
    ``secret_problems``: what is wrong with the settings' secrets (refused in production).
    Exercised by running a worker (tests/test_worker_kill.py)."""
    from cases.store.services import Services, register

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = {k: getattr(config, k) for k in dir(config) if k.isupper()}
    problems = secret_problems(settings)
    if problems and getattr(config, "ENV_NAME", "") == "production":  # the worker signs page codes too
        raise SystemExit("BAOXUE_ENV=production，后台任务进程拒绝启动：" + "；".join(problems))
    # Every table on Base (audit_log.user_id refers to the accounts' users: flushing an audit entry
    # in a batch job failed with NoReferencedTableError when only some model modules were imported).
    from cases.store.models import load_all_models

    load_all_models()
    # Background work (OCR of scans, batches) yields the CPU to the web processes answering people.
    nice = int(getattr(config, "JOB_NICE", 0) or 0)
    if nice:
        os.nice(nice)
    huey = init_jobs(config)
    # The job kinds find the store, secrets and converter settings through the one registry.
    register(Services.from_config(settings, _state.session_factory))
    # Modules that register more job kinds with @job_task must be imported before consuming.
    for module in (*JOB_MODULES, *getattr(config, "JOB_MODULES", ())):
        importlib.import_module(module)
    # OCR models, tables and sessions loaded once here, not inside the first job of each kind.
    if getattr(config, "JOB_WARM_UP", True):
        warm_up()
    stop = threading.Event()
    threading.Thread(target=run_reaper, args=(stop,), name="job-reaper", daemon=True).start()
    # An idle worker polls the queue with backoff up to ``JOB_POLL_MAX_SECONDS`` (Huey's default of
    # 10 s left an upload waiting up to 10 s for a worker that had nothing to do; Redis blocks instead).
    poll = float(getattr(config, "JOB_POLL_MAX_SECONDS", DEFAULT_POLL_MAX_S) or DEFAULT_POLL_MAX_S)
    try:
        huey.create_consumer(workers=int(getattr(config, "JOB_WORKERS", 2)), worker_type="thread",
                             initial_delay=min(0.1, poll), max_delay=poll).run()
    finally:
        stop.set()


if __name__ == "__main__":  # pragma: no cover
    # Run through the importable module, not ``__main__``: job kinds registered by other modules
    # (cases.documents.batch imports ``cases.store.jobs``) must land in the registry the consumer serves.
    from cases.store import jobs as _jobs
    from config import Config, secret_problems

    _jobs.main(Config, secret_problems)
