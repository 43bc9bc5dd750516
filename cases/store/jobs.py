"""Background jobs: Huey plus a ``Job`` progress row per job.

Huey is built at app start by ``init_jobs(config)``: a SQLite-backed queue (``<output>/huey.db``)
on one machine by default, Redis-backed when ``REDIS_URL`` is set (workers on many machines), and
immediate (run in-process, in-memory queue) when ``HUEY_IMMEDIATE`` is true, as in tests.

A job kind is a plain function registered with ``@job_task("kind")``; it receives a
``JobContext`` and only ids and paths (never ORM rows: a worker opens its own session). Callers
start a job with ``submit(session, "kind", *args)`` and poll the ``Job`` row it returns the id of.

Worker: ``python -m cases.store.jobs`` (or ``huey_consumer cases.jobs.huey``), with the same environment
as the web service.
"""

from __future__ import annotations

import importlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cases.store.db import make_engine, make_session_factory, session_scope
from cases.store.models import Job, Upload, utcnow
from cases.store.storage import Store, sha256_bytes
from forms.errors import NotFound

log = logging.getLogger(__name__)

TaskFunc = Callable[..., str | None]
_PAYLOAD_TYPES = (str, int, float, bool, type(None))
# Modules defining job kinds, imported by the worker (python -m cases.store.jobs) before it consumes.
JOB_MODULES = ("cases.documents.batch", "cases.returns.scans")


@dataclass
class _State:
    huey: Huey | None = None
    session_factory: sessionmaker[Session] | None = None
    output_dir: Path | None = None
    wrapped: dict[str, Any] = field(default_factory=dict)


_TASKS: dict[str, TaskFunc] = {}
_state = _State()


def _setting(config, name: str, default=None):
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def init_jobs(config, *, session_factory: sessionmaker[Session] | None = None) -> Huey:
    """Build the Huey instance and the session factory used by job-row updates.

    ``config`` is a Config class/object or a mapping (Flask ``app.config``) with OUTPUT_DIR,
    DATABASE_URL, REDIS_URL, HUEY_IMMEDIATE and optionally HUEY_NAME.
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
    _state.wrapped = {}
    for kind in _TASKS:
        _wrap(kind)
    log.info("jobs: %s queue %r%s", type(huey).__name__, name, " (immediate)" if immediate else "")
    return huey


def get_huey() -> Huey:
    """The configured Huey instance (built from ``config.Config`` on first use if needed)."""
    if _state.huey is None:
        from config import Config

        init_jobs(Config)
    return _state.huey


def __getattr__(name: str):
    # ``huey_consumer cases.jobs.huey`` looks the instance up as a module attribute.
    if name == "huey":
        return get_huey()
    raise AttributeError(name)


def _factory() -> sessionmaker[Session]:
    get_huey()
    return _state.session_factory


# ---- job rows -----------------------------------------------------------------------------------

def create_job(session: Session, kind: str, total: int = 0, *, org_id: int | None = None) -> Job:
    """Add a queued ``Job`` row to the session (the caller commits)."""
    job = Job(id=str(uuid.uuid4()), kind=kind, total=total, org_id=org_id, status="queued")
    session.add(job)
    return job


def _update(job_id: str, **values) -> None:
    with session_scope(_factory()) as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"没有任务 {job_id}", job=job_id)
        for k, v in values.items():
            setattr(job, k, v)
        job.updated_at = utcnow()


def progress(job_id: str, done: int, *, total: int | None = None) -> None:
    """Record how many of ``total`` items are done (committed at once, for pollers)."""
    values: dict[str, Any] = {"done": done, "status": "running"}
    if total is not None:
        values["total"] = total
    _update(job_id, **values)


def finish(job_id: str, result_path: str | None = None) -> None:
    """Mark the job done, with the path of its result file if it has one."""
    _update(job_id, status="done", result_path=result_path, error=None)


def fail(job_id: str, error: str) -> None:
    """Mark the job failed with a message a person can act on."""
    _update(job_id, status="failed", error=error)


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"没有任务 {job_id}", job=job_id)
    return job


# ---- tasks ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobContext:
    """What a task function gets besides its ids and paths."""

    job_id: str
    output_dir: Path

    def progress(self, done: int, total: int | None = None) -> None:
        progress(self.job_id, done, total=total)

    def session(self):
        """A unit of work on the job database (``with ctx.session() as s: ...``)."""
        return session_scope(_factory())


def job_task(kind: str) -> Callable[[TaskFunc], TaskFunc]:
    """Register ``fn(ctx: JobContext, *ids_and_paths) -> result_path | None`` as job ``kind``."""

    def register(fn: TaskFunc) -> TaskFunc:
        _TASKS[kind] = fn
        if _state.huey is not None:
            _wrap(kind)
        return fn

    return register


def _run_tracked(kind: str, job_id: str, *args) -> None:
    fn = _TASKS[kind]
    _update(job_id, status="running")
    ctx = JobContext(job_id=job_id, output_dir=_state.output_dir or Path("output"))
    try:
        result_path = fn(ctx, *args)
    except Exception as e:
        # Recorded on the row for the person polling it, then re-raised for Huey's log.
        fail(job_id, f"{getattr(e, 'message', None) or e} ({type(e).__name__})")
        raise
    finish(job_id, result_path)


def _wrap(kind: str):
    huey = _state.huey

    def run(job_id: str, *args) -> None:
        _run_tracked(kind, job_id, *args)

    run.__module__ = __name__
    run.__qualname__ = run.__name__ = f"job_{kind}"
    task = huey.task(name=f"job_{kind}")(run)
    _state.wrapped[kind] = task
    return task


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
    job = create_job(session, kind, total, org_id=org_id)
    session.commit()
    get_huey()
    task = _state.wrapped.get(kind) or _wrap(kind)
    task(job.id, *payload)
    return job.id


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


def main() -> None:  # pragma: no cover - exercised by running a worker
    """Run a consumer for the configured queue (``python -m cases.store.jobs``)."""
    from cases.store.services import Services, register
    from config import Config

    logging.basicConfig(level=logging.INFO)
    huey = init_jobs(Config)
    # The job kinds find the store, secrets and converter settings through the one registry.
    register(Services.from_config({k: getattr(Config, k) for k in dir(Config) if k.isupper()},
                                  _state.session_factory))
    # Modules that register more job kinds with @job_task must be imported before consuming.
    for module in (*JOB_MODULES, *getattr(Config, "JOB_MODULES", ())):
        importlib.import_module(module)
    huey.create_consumer(workers=2, worker_type="thread").run()


if __name__ == "__main__":  # pragma: no cover
    # Run through the importable module, not ``__main__``: job kinds registered by other modules
    # (cases.documents.batch imports ``cases.store.jobs``) must land in the registry the consumer serves.
    from cases.store import jobs as _jobs

    _jobs.main()
