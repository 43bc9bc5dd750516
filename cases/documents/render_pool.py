"""Rendering a document (DOCX, PDF through LibreOffice, QR stamps, field geometry) away from the
threads that answer reads.

Rendering is pure-Python CPU work (python-docx, the QR stamper, the PDF geometry, the UNO bridge
walking LibreOffice's layout) that holds the interpreter lock for hundreds of milliseconds per
document. Done in a web thread, every other request of that web process waits for the lock: at
16 clients reads queued behind conversion (issue 14). So a web process renders in a small pool of
renderer processes (``RENDER_PROCESSES``), each with its own warm LibreOffice, both at a lower CPU
priority (``RENDER_NICE``; soffice ``PDF_NICE`` further down) so that on a small machine the web
threads are served first. The web thread only waits for the answer, without the lock.

The pool's queue is bounded: at most ``RENDER_PENDING`` documents per web process are rendering or
waiting. When it is full, issuing answers at once with 503, ``Retry-After`` and a clear message,
before any document number is reserved (``slot``), instead of holding more web threads that reads
need. A renderer process that dies is replaced; its document fails like a LibreOffice failure
(the number is given back by ``issuing``), and the next one is rendered by a fresh process.

Without a pool (``RENDER_PROCESSES`` = 0: the job worker, which answers no reads, and the tests)
documents are rendered in the calling thread, the same way.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

from forms import identity as ident
from forms.errors import BaoxueError, MissingTool, ToolFailed
from forms.spec import FormSpec, Variant

log = logging.getLogger(__name__)


class RendererBusy(BaoxueError):
    """Every renderer of this web process is busy and its queue is full: try again later."""

    code = "renderer_busy"
    http_status = 503


@dataclass(frozen=True)
class RenderSettings:
    """What rendering needs from the services (picklable: it travels to a renderer process)."""

    fonts: tuple[str, ...]
    qr_keys: ident.QrKeys
    pdf_workers: int = 1
    pdf_timeout: float = 120

    @classmethod
    def of(cls, services) -> RenderSettings:
        return cls(fonts=tuple(services.fonts), qr_keys=services.qr_keys, pdf_workers=services.pdf_workers,
                   pdf_timeout=services.pdf_timeout)


@dataclass(frozen=True)
class Rendered:
    docx: bytes
    pdf: bytes | None
    pages: int | None
    geometry: dict | None


def render_files(settings: RenderSettings, spec: FormSpec, variant: Variant | None, cleaned: dict,
                 identity: ident.Identity, *, doc_extra: dict, want_pdf: bool = True) -> Rendered:
    """DOCX and PDF through the warm converter, QR on every page of both (the DOCX gets each page's
    code where LibreOffice laid that page out, ``forms.docx_qr``), field geometry of the PDF.
    Without ``want_pdf`` only the DOCX is returned (it still needs the layout for its codes)."""
    from forms import docx_qr, geometry, pdf, render, stamp

    docx = render.render_docx(spec, variant, cleaned, identity, extra={"doc": doc_extra}, fonts=settings.fonts)
    raw_pdf, starts = pdf.get_converter(settings.pdf_workers, settings.pdf_timeout).convert_with_layout(docx)
    stamped, pages = stamp.stamp_pdf(raw_pdf, identity, settings.qr_keys)
    docx = docx_qr.add_page_codes(docx, starts, stamp.page_widths_mm(stamped), identity, settings.qr_keys)
    if not want_pdf:
        return Rendered(docx, None, None, None)
    geo = geometry.record_geometry(stamped, spec, variant)
    return Rendered(docx, stamped, pages, geo)


# ---- the renderer processes (run in the child) ---------------------------------------------------------

def _child_init(nice: int, pdf_settings: dict, setup: Callable[[], None] | None) -> None:
    """A renderer process starts: lower CPU priority, the parent's LibreOffice limits, then
    ``setup`` (a module-level function, e.g. a test's slowed converter).

    Stopping: SIGTERM/SIGINT sent to gunicorn's whole process group are ignored here, the web
    process ends its renderers itself (its pool's exit: the renderer finishes its document, exits
    normally, and its exit handlers quit LibreOffice). A web process that dies without that
    (SIGKILL) is noticed within a second: the renderer kills its LibreOffice and exits, instead of
    both running on without a parent."""
    from forms import pdf

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="renderer-parent-watch",
                     daemon=True).start()

    if nice:
        try:
            os.nice(nice)
        except OSError:  # not allowed to change it: render at the parent's priority
            log.warning("renderer process could not lower its CPU priority by %d", nice)
    pdf.configure(**pdf_settings)
    if setup is not None:
        setup()


def _exit_with_parent(parent: int) -> None:
    from forms import pdf

    while os.getppid() == parent:
        time.sleep(1.0)
    log.warning("renderer %d: its web process %d is gone; stopping", os.getpid(), parent)
    conv = pdf.get_converter_if_started()
    if conv is not None:
        conv.kill_now()
    os._exit(0)


def _child_warm(settings: RenderSettings) -> int:
    """Start the renderer's LibreOffice now (``PDF_PREWARM``); returns the renderer's pid."""
    from forms import pdf

    pdf.get_converter(settings.pdf_workers, settings.pdf_timeout).start()
    return os.getpid()


def _child_render(settings: RenderSettings, form: str, variant: str | None, cleaned: dict,
                  identity: ident.Identity, doc_extra: dict, want_pdf: bool) -> tuple:
    """Render in the renderer process. Errors come back as data (the service's errors carry
    keyword details that do not survive pickling): ("ok", Rendered) or ("error", kind, message, fatal)."""
    from forms.registry import get_spec

    spec = get_spec(form)
    try:
        t0 = time.monotonic()
        out = render_files(settings, spec, spec.variant(variant), cleaned, identity, doc_extra=doc_extra,
                           want_pdf=want_pdf)
        return "ok", out, _soffice_groups(), time.monotonic() - t0
    except (ToolFailed, MissingTool) as e:
        return "error", type(e).__name__, e.message, bool(getattr(e, "fatal", False)), e.details.get("tool")
    except BaoxueError as e:
        return "error", "BaoxueError", e.message, True, None


def _soffice_groups() -> tuple[int, tuple[int, ...]]:
    """This renderer's pid and its LibreOffice process groups (killed with it if it dies)."""
    from forms import pdf

    conv = pdf.get_converter_if_started()
    return os.getpid(), tuple(conv.pids() if conv else ())


def _child_stats() -> dict:
    """The renderer's pid and its LibreOffice's figures (for tests, the bench and /health)."""
    from forms import pdf

    conv = pdf.get_converter_if_started()
    return {"pid": os.getpid(), "nice": os.nice(0), "soffice_pids": conv.pids() if conv else [],
            **(conv.stats if conv else {})}


def _raise_from_child(kind: str, message: str, fatal: bool, tool: str | None):
    if kind == "MissingTool":
        raise MissingTool(message, tool=tool or "soffice")
    if kind == "ToolFailed":
        err = ToolFailed(message, tool=tool or "soffice")
        err.fatal = fatal
        raise err
    # any other error of the service while rendering: the input is at fault, not LibreOffice
    err = ToolFailed(message, tool="render")
    err.fatal = True
    raise err


# ---- the pool (in the web process) -----------------------------------------------------------------------

class RenderPool:
    """``processes`` renderer processes behind a queue of at most ``pending`` documents."""

    def __init__(self, processes: int, pending: int, *, nice: int = 0, pdf_settings: dict | None = None,
                 timeout: float = 300, setup: Callable[[], None] | None = None):
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self.pending_limit = max(processes, pending)
        self.nice = nice
        self.pdf_settings = dict(pdf_settings or {})
        self.timeout = timeout
        self.setup = setup
        self._slots = threading.BoundedSemaphore(self.pending_limit)
        self._lock = threading.Lock()
        self._pending = 0
        self._executor: ProcessPoolExecutor | None = None
        self._soffice: dict[int, tuple[int, ...]] = {}  # renderer pid -> its soffice process groups
        self._seconds = 2.0  # running estimate of one render (for Retry-After)
        self.rendered = 0
        self.refused = 0
        self.replaced = 0

    # -- queue bound
    @contextmanager
    def slot(self) -> Iterator[None]:
        """A place in the bounded queue for one document, or ``RendererBusy`` (503) at once."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            raise self.busy()
        with self._lock:
            self._pending += 1
        try:
            yield
        finally:
            with self._lock:
                self._pending -= 1
            self._slots.release()

    def retry_after(self) -> int:
        """Seconds until a place is likely free: a place frees each time a renderer finishes a
        document, at the measured pace of one document (a client told to wait longer would leave
        the renderers idle)."""
        with self._lock:
            wait = self._seconds / self.processes
        return max(1, min(60, math.ceil(wait)))

    def busy(self) -> RendererBusy:
        wait = self.retry_after()
        return RendererBusy(
            f"文书生成繁忙：已有{self._pending}份文书正在生成或排队（上限{self.pending_limit}份）。"
            f"请在{wait}秒后重试；本次请求未占用文号。",
            retry_after=wait, pending=self._pending, limit=self.pending_limit)

    # -- processes
    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn: a fresh interpreter, not a fork of a threaded web process
                self._executor = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_child_init, initargs=(self.nice, self.pdf_settings, self.setup))
            return self._executor

    def _replace(self, broken: ProcessPoolExecutor, why: str) -> None:
        with self._lock:
            if self._executor is not broken:
                return  # another thread replaced it already
            self._executor = None
            self.replaced += 1
        log.warning("renderer processes replaced: %s", why)
        procs = list((getattr(broken, "_processes", None) or {}).values())
        broken.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # a hung renderer: ours, by handle
            if p.is_alive():
                p.kill()
        with self._lock:
            groups = [(pid, self._soffice.pop(pid, ())) for pid in [p.pid for p in procs]]
        for pid, pgids in groups:  # a dead renderer's LibreOffice would be left running: ours, by id
            for pgid in pgids:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                else:
                    log.warning("killed LibreOffice %d of dead renderer %d", pgid, pid)

    def call(self, fn, *args, timeout: float | None = None):
        pool = self._pool()
        try:
            return pool.submit(fn, *args).result(timeout=timeout or self.timeout)
        except BrokenProcessPool as e:
            self._replace(pool, "a renderer process died")
            raise ToolFailed("文书生成进程意外退出（已重新启动）", tool="render") from e
        except FutureTimeout as e:
            self._replace(pool, f"no answer within {timeout or self.timeout:.0f} s")
            raise ToolFailed(f"文书生成超过{timeout or self.timeout:.0f}秒未完成", tool="render") from e

    def start(self, settings: RenderSettings) -> None:
        """Start every renderer and its LibreOffice now."""
        pool = self._pool()
        futures = [pool.submit(_child_warm, settings) for _ in range(self.processes)]
        for f in futures:
            try:
                f.result(timeout=self.timeout)
            except (BaoxueError, BrokenProcessPool, FutureTimeout) as e:
                log.warning("renderer did not start: %s", e)
        for _ in range(self.processes):  # each renderer's LibreOffice, should one die before rendering
            try:
                renderer, groups = pool.submit(_soffice_groups).result(timeout=30)
            except (BrokenProcessPool, FutureTimeout):
                break
            with self._lock:
                self._soffice[renderer] = groups

    def render(self, settings: RenderSettings, spec: FormSpec, variant: Variant | None, cleaned: dict,
               identity: ident.Identity, *, doc_extra: dict, want_pdf: bool = True) -> Rendered:
        out = self.call(_child_render, settings, spec.code, variant.code if variant else None, cleaned,
                        identity, doc_extra, want_pdf)
        if out[0] != "ok":
            _raise_from_child(*out[1:])
        renderer, groups = out[2]
        with self._lock:
            self._soffice[renderer] = groups
            self._seconds = 0.8 * self._seconds + 0.2 * out[3]  # the render itself, not its wait in the queue
            self.rendered += 1
        return out[1]

    def stats(self) -> dict:
        with self._lock:
            return {"processes": self.processes, "pending": self._pending, "limit": self.pending_limit,
                    "rendered": self.rendered, "refused": self.refused, "replaced": self.replaced,
                    "seconds_per_document": round(self._seconds, 2)}

    def renderer_stats(self) -> list[dict]:
        """Each renderer's pid, niceness and LibreOffice figures (asks the renderers)."""
        return [self.call(_child_stats, timeout=30) for _ in range(self.processes)]

    def renderer_pids(self) -> list[int]:
        """The pids of the renderer processes running now."""
        with self._lock:
            pool = self._executor
        return [p.pid for p in (getattr(pool, "_processes", None) or {}).values()] if pool else []

    def shutdown(self) -> None:
        with self._lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# ---- the process-wide pool ---------------------------------------------------------------------------

_pool: RenderPool | None = None
_pool_lock = threading.Lock()


def configure(processes: int, pending: int, *, nice: int = 0, pdf_settings: dict | None = None,
              timeout: float = 300, setup: Callable[[], None] | None = None) -> RenderPool | None:
    """Use ``processes`` renderer processes in this process from now (0: render in the caller).
    The same settings keep the running pool; other settings replace it. ``setup`` runs in each
    renderer process as it starts."""
    global _pool
    with _pool_lock:
        old = _pool
        if processes <= 0:
            _pool = None
        elif old is None or (old.processes, old.pending_limit, old.nice, old.pdf_settings, old.timeout,
                             old.setup) != (processes, max(processes, pending), nice, dict(pdf_settings or {}),
                                            timeout, setup):
            _pool = RenderPool(processes, pending, nice=nice, pdf_settings=pdf_settings, timeout=timeout,
                               setup=setup)
        if old is not None and old is not _pool:
            old.shutdown()
        return _pool


def current() -> RenderPool | None:
    return _pool


@contextmanager
def slot() -> Iterator[None]:
    """A place in this process's render queue (``RendererBusy`` when full); no bound without a pool."""
    pool = _pool
    if pool is None:
        yield
        return
    with pool.slot():
        yield


def render(settings: RenderSettings, spec: FormSpec, variant: Variant | None, cleaned: dict,
           identity: ident.Identity, *, doc_extra: dict, want_pdf: bool = True) -> Rendered:
    """Render one document in this process's renderer pool, or here without one."""
    pool = _pool
    if pool is None:
        return render_files(settings, spec, variant, cleaned, identity, doc_extra=doc_extra, want_pdf=want_pdf)
    return pool.render(settings, spec, variant, cleaned, identity, doc_extra=doc_extra, want_pdf=want_pdf)
