"""DOCX -> PDF through LibreOffice kept warm.

One cold ``soffice --convert-to pdf`` per document costs ≈2 s (process start, profile, fonts). A
``PdfConverter`` instead owns N ``soffice --accept=pipe,...`` listeners, each with its own absolute
user installation (a relative one crashes LibreOffice), and drives them over UNO: load the DOCX
hidden, ``storeToURL`` with ``writer_pdf_Export``, close. LibreOffice embeds subsets of the fonts
it uses, so the CJK fonts named by the template end up in the PDF.

Supervision: a listener is started lazily and waited for; a conversion that runs past ``timeout``
gets its soffice killed (which also unblocks the UNO call); a dead or killed listener is restarted
and the document retried once. Each listener has a lock; N > 1 listeners form a pool. Everything is
shut down at interpreter exit.

Recycling (as Gotenberg's restart-after): a warm soffice grows 2–3 MiB per conversion and never
gives it back, so a listener is quit and started afresh after ``recycle_after`` conversions or as
soon as its processes' resident memory passes ``recycle_rss_mb`` — after the document that crossed
the line was delivered, off the caller's path: the listener leaves the pool while it restarts (the
others keep serving) and comes back warm. No request fails for it. ``nice`` runs soffice at a lower
CPU priority, so that on a small machine the web threads answering reads are served first.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from forms import tools
from forms.errors import MissingTool, ToolFailed

log = logging.getLogger(__name__)

_STARTUP_TIMEOUT = 60.0
# Defaults for converters made by ``get_converter``; set once from the configuration (``configure``).
SETTINGS = {"recycle_after": 50, "recycle_rss_mb": 400.0, "nice": 5}


def configure(*, recycle_after: int | None = None, recycle_rss_mb: float | None = None,
              nice: int | None = None) -> None:
    """Set the recycling limits (0 = never) and soffice's CPU niceness for converters made from now."""
    for key, value in (("recycle_after", recycle_after), ("recycle_rss_mb", recycle_rss_mb), ("nice", nice)):
        if value is not None:
            SETTINGS[key] = value


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:  # a child may have been started by any thread of the parent
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (the soffice launcher and soffice.bin), MiB."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kib(p)
        todo.extend(_children(p))
    return total / 1024
_live: weakref.WeakSet[PdfConverter] = weakref.WeakSet()


def _uno():
    """Import the UNO bridge (python3-uno, reachable through the venv's system site-packages)."""
    try:
        import uno
    except ImportError as e:
        raise MissingTool("Python UNO bridge (python3-uno) is not importable; install LibreOffice's "
                          "python3-uno and use a venv with system site-packages", tool="uno") from e
    return uno


def _props(uno, **values) -> tuple:
    out = []
    for name, value in values.items():
        p = uno.createUnoStruct("com.sun.star.beans.PropertyValue")
        p.Name, p.Value = name, value
        out.append(p)
    return tuple(out)


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group spawn() started: soffice and soffice.bin
    except ProcessLookupError:
        pass  # already gone
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.error("LibreOffice process %d did not die after SIGKILL", proc.pid)


class _Office:
    """One warm soffice listener, used by one thread at a time."""

    def __init__(self, root: Path, index: int, timeout: float, *, recycle_after: int = 0,
                 recycle_rss_mb: float = 0, nice: int = 0):
        self.recycle_after = recycle_after
        self.recycle_rss_mb = recycle_rss_mb
        self.nice = nice
        self.since_start = 0  # conversions by the current soffice
        self.recycles = 0
        self.recycle_due: str | None = None  # why this listener is to be recycled before its next document
        self.root = root
        self.index = index
        self.timeout = timeout
        self.lock = threading.Lock()
        self.proc = None
        self.desktop = None
        self.pipe = ""
        self.profile = root / f"profile-{index}"  # kept across restarts: a warm profile starts fast
        self.work = root / f"work-{index}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.conversions = 0
        self.restarts = 0

    # ---- life cycle ----------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.desktop is not None

    def start(self) -> None:
        uno = _uno()
        if not tools.probe("soffice").installed:
            raise MissingTool("LibreOffice (soffice) is not installed (run scripts/setup.sh)", tool="soffice")
        self.pipe = f"baoxue_{uuid.uuid4().hex}"
        niced = ["nice", "-n", str(self.nice)] if self.nice and shutil.which("nice") else []
        self.since_start, self.recycle_due = 0, None
        self.proc = tools.spawn([
            *niced, "soffice", "--headless", "--invisible", "--nologo", "--norestore", "--nodefault",
            "--nolockcheck", f"--accept=pipe,name={self.pipe};urp;StarOffice.ComponentContext",
            f"-env:UserInstallation={self.profile.resolve().as_uri()}",
        ])
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        no_connect = uno.getClass("com.sun.star.connection.NoConnectException")
        # A listener that accepts the pipe before its component context is ready answers the first
        # resolve with a RuntimeException ("initial object ... returned ANY of type boolean"): not yet
        # started, like NoConnectException, so it is tried again until the deadline.
        not_ready = (no_connect, uno.getClass("com.sun.star.uno.RuntimeException"))
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise ToolFailed(f"LibreOffice exited while starting (exit code {code})", tool="soffice")
            try:
                ctx = resolver.resolve(f"uno:pipe,name={self.pipe};urp;StarOffice.ComponentContext")
                break
            except not_ready:
                if time.monotonic() > deadline:
                    self.kill()
                    raise ToolFailed("LibreOffice did not accept connections within "
                                     f"{_STARTUP_TIMEOUT:.0f} s", tool="soffice") from None
                time.sleep(0.1)
        self.desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        log.info("LibreOffice listener %d started (pid %d)", self.index, self.proc.pid)

    def kill(self) -> None:
        """Kill this listener's soffice and forget the connection.

        ``soffice`` is a launcher (oosplash) that runs ``soffice.bin`` as its child; both live in the
        process group ``tools.spawn`` created for them, so the group (ours, by id) is killed."""
        proc, self.proc, self.desktop = self.proc, None, None
        if proc is not None:
            _kill_group(proc)

    def stop(self) -> None:
        """Ask LibreOffice to quit, then make sure it has."""
        if self.desktop is not None and self.proc is not None and self.proc.poll() is None:
            uno = _uno()
            try:
                self.desktop.terminate()
            except uno.getClass("com.sun.star.uno.Exception"):
                pass  # the bridge drops as soffice quits: expected
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass  # killed below
        self.kill()

    # ---- work ----------------------------------------------------------------------------
    def convert(self, docx: bytes, layout: bool = False):
        """Convert with supervision: a dead or hung listener is restarted and the document retried once.
        With ``layout``: (pdf, page starts) — see ``PdfConverter.convert_with_layout``."""
        with self.lock:
            for attempt in (1, 2):
                if not self.alive():
                    if self.proc is not None:
                        self.kill()
                        self.restarts += 1
                    self.start()
                try:
                    pdf = self._convert_once(docx, layout)
                    self.conversions += 1
                    self.since_start += 1
                    self.recycle_due = self._recycle_reason()
                    return pdf
                except ToolFailed as e:
                    if getattr(e, "fatal", False) or attempt == 2:
                        raise
                    log.warning("LibreOffice listener %d failed (%s); restarting and retrying once",
                                self.index, e.message)
                    self.kill()
                    self.restarts += 1
        raise AssertionError("unreachable")

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid) if self.proc is not None else 0.0

    def _recycle_reason(self) -> str | None:
        if self.recycle_after and self.since_start >= self.recycle_after:
            return f"{self.since_start} conversions"
        if self.recycle_rss_mb:
            rss = self.rss_mb()
            if rss > self.recycle_rss_mb:
                return f"{rss:.0f} MiB resident (limit {self.recycle_rss_mb:.0f})"
        return None

    def recycle(self) -> None:
        """Quit this soffice and start a fresh one (called with the listener out of the pool)."""
        with self.lock:
            reason, self.recycle_due = self.recycle_due, None
            log.info("LibreOffice listener %d recycled after %s", self.index, reason)
            self.stop()
            self.recycles += 1
            try:
                self.start()
            except (ToolFailed, MissingTool) as e:  # started again on its next document
                log.warning("LibreOffice listener %d did not restart after recycling: %s", self.index, e)

    def _convert_once(self, docx: bytes, layout: bool = False):
        uno = _uno()
        uno_error = uno.getClass("com.sun.star.uno.Exception")
        name = uuid.uuid4().hex
        src, dst = self.work / f"{name}.docx", self.work / f"{name}.pdf"
        src.write_bytes(docx)
        timed_out = threading.Event()

        def hung():
            timed_out.set()
            log.warning("LibreOffice listener %d hung for %.0f s: killing it", self.index, self.timeout)
            if self.proc is not None:
                _kill_group(self.proc)

        watchdog = threading.Timer(self.timeout, hung)
        watchdog.daemon = True
        watchdog.start()
        doc = None
        try:
            doc = self.desktop.loadComponentFromURL(src.resolve().as_uri(), "_blank", 0,
                                                    _props(uno, Hidden=True, ReadOnly=True))
            if doc is None:
                err = ToolFailed("LibreOffice could not open the rendered DOCX", tool="soffice")
                err.fatal = True  # the input is at fault: a restart would not help
                raise err
            starts = _page_starts(doc) if layout else None
            doc.storeToURL(dst.resolve().as_uri(), _props(uno, FilterName="writer_pdf_Export"))
            return (dst.read_bytes(), starts) if layout else dst.read_bytes()
        except uno_error as e:
            reason = getattr(e, "Message", "") or type(e).__name__
            why = "timed out" if timed_out.is_set() else f"failed: {reason}"
            raise ToolFailed(f"LibreOffice PDF export {why}", tool="soffice") from e
        except FileNotFoundError as e:
            raise ToolFailed("LibreOffice wrote no PDF", tool="soffice") from e
        finally:
            watchdog.cancel()
            if doc is not None and not timed_out.is_set():
                try:
                    doc.close(True)
                except uno_error:
                    pass  # the document is gone either way
            src.unlink(missing_ok=True)
            dst.unlink(missing_ok=True)


def _page_starts(doc) -> list[tuple[int, int | None, int]]:
    """Where each top-level body element starts: (element index among the body's paragraphs and
    tables, table row or None, page number), from LibreOffice's own layout (the view cursor)."""
    cursor = doc.getCurrentController().getViewCursor()
    out: list[tuple[int, int | None, int]] = []
    elements = doc.getText().createEnumeration()
    index = 0
    while elements.hasMoreElements():
        el = elements.nextElement()
        if el.supportsService("com.sun.star.text.TextTable"):
            for r in range(el.getRows().getCount()):
                cursor.gotoRange(el.getCellByPosition(0, r).getStart(), False)
                out.append((index, r, cursor.getPage()))
        else:
            cursor.gotoRange(el.getStart(), False)
            out.append((index, None, cursor.getPage()))
        index += 1
    return out


class PdfConverter:
    """A pool of ``workers`` warm LibreOffice listeners converting DOCX bytes to PDF bytes.

    Thread-safe. Listeners start lazily (or with ``start()``), under ``base_dir`` (default: a new
    temporary directory) which holds their profiles and scratch files and is removed at shutdown."""

    def __init__(self, workers: int = 1, timeout: float = 120, base_dir: Path | str | None = None, *,
                 recycle_after: int | None = None, recycle_rss_mb: float | None = None, nice: int | None = None):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        limits = {"recycle_after": SETTINGS["recycle_after"] if recycle_after is None else recycle_after,
                  "recycle_rss_mb": SETTINGS["recycle_rss_mb"] if recycle_rss_mb is None else recycle_rss_mb,
                  "nice": SETTINGS["nice"] if nice is None else nice}
        self.workers = workers
        self.timeout = timeout
        self._own_root = base_dir is None
        root = Path(tempfile.mkdtemp(prefix="baoxue-lo-")) if base_dir is None else Path(base_dir)
        self.root = root.resolve()  # LibreOffice needs an absolute user installation path
        self._offices = [_Office(self.root, i, timeout, **limits) for i in range(workers)]
        self._idle: queue.Queue[_Office] = queue.Queue()
        for office in self._offices:
            self._idle.put(office)
        self._closed = False
        _live.add(self)

    def start(self) -> None:
        """Start every listener now (otherwise each starts on its first document)."""
        with ThreadPoolExecutor(self.workers) as ex:
            list(ex.map(self._start_one, self._offices))

    @staticmethod
    def _start_one(office: _Office) -> None:
        with office.lock:
            if not office.alive():
                office.start()

    def convert(self, docx: bytes) -> bytes:
        """Convert one DOCX to PDF (blocks while every listener is busy)."""
        return self._run(docx, False)

    def convert_with_layout(self, docx: bytes) -> tuple[bytes, list[tuple[int, int | None, int]]]:
        """The PDF and where each body paragraph, table and table row starts (element index, row
        or None, page), as LibreOffice laid the document out for that PDF: what
        ``forms.docx_qr`` needs to put each page's code on its own page of the DOCX."""
        return self._run(docx, True)

    def _run(self, docx: bytes, layout: bool):
        if self._closed:
            raise ToolFailed("PDF converter is shut down", tool="soffice")
        office = self._idle.get()
        try:
            return office.convert(docx, layout)
        finally:
            if office.recycle_due and not self._closed:
                # Off the caller's path: the document is delivered, the listener restarts apart.
                threading.Thread(target=self._recycle, args=(office,), name=f"lo-recycle-{office.index}",
                                 daemon=True).start()
            else:
                self._idle.put(office)

    def _recycle(self, office: _Office) -> None:
        try:
            office.recycle()
        finally:
            self._idle.put(office)

    def convert_many(self, docs: Iterable[bytes]) -> list[bytes]:
        """Convert a batch using every listener; results in input order."""
        docs = list(docs)
        if self.workers == 1 or len(docs) < 2:
            return [self.convert(d) for d in docs]
        with ThreadPoolExecutor(self.workers) as ex:
            return list(ex.map(self.convert, docs))

    @property
    def stats(self) -> dict[str, int | float]:
        return {"conversions": sum(o.conversions for o in self._offices),
                "restarts": sum(o.restarts for o in self._offices),
                "recycles": sum(o.recycles for o in self._offices),
                "running": sum(o.alive() for o in self._offices),
                "rss_mb": round(sum(o.rss_mb() for o in self._offices), 1)}

    def pids(self) -> list[int]:
        return [o.proc.pid for o in self._offices if o.proc is not None]

    def kill_now(self) -> None:
        """Kill every listener's soffice group at once and remove the scratch directory, taking no
        lock: for a process that must go now (its parent died) while a conversion may be running."""
        self._closed = True
        for office in self._offices:
            proc = office.proc
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # ours, by id
                except ProcessLookupError:
                    pass
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def shutdown(self) -> None:
        """Quit every listener and remove the scratch directory."""
        if self._closed:
            return
        self._closed = True
        for office in self._offices:
            with office.lock:
                office.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PdfConverter:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


_singleton: PdfConverter | None = None
_singleton_lock = threading.Lock()


def get_converter(workers: int = 1, timeout: float = 120) -> PdfConverter:
    """The process-wide converter (created on first use; recreated if asked for another size)."""
    global _singleton
    with _singleton_lock:
        if _singleton is None or _singleton._closed or _singleton.workers != workers:  # noqa: SLF001
            if _singleton is not None:
                _singleton.shutdown()
            _singleton = PdfConverter(workers=workers, timeout=timeout)
        return _singleton


def get_converter_if_started() -> PdfConverter | None:
    """The process-wide converter if one was made and is not shut down (none is started)."""
    conv = _singleton
    return conv if conv is not None and not conv._closed else None  # noqa: SLF001


def convert_docx_to_pdf(docx: bytes) -> bytes:
    """Convert one DOCX to PDF with the process-wide warm converter."""
    return get_converter().convert(docx)


def convert_many(docs: Iterable[bytes], workers: int | None = None) -> list[bytes]:
    """Convert a batch with the process-wide converter (all of its listeners)."""
    conv = get_converter(workers) if workers else (_singleton if _singleton and not _singleton._closed  # noqa: SLF001
                                                    else get_converter())
    return conv.convert_many(docs)


def cold_convert(docx: bytes, timeout: float = 180) -> bytes:
    """One ``soffice --convert-to pdf`` process for one document: the slow baseline the benchmark
    compares against. Not for production use."""
    with tempfile.TemporaryDirectory(prefix="baoxue-cold-") as tmp:
        tmp_path = Path(tmp).resolve()
        src = tmp_path / "document.docx"
        src.write_bytes(docx)
        tools.run(["soffice", "--headless", "--norestore", "--nologo",
                   f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
                   "--convert-to", "pdf", "--outdir", str(tmp_path), str(src)], timeout=timeout)
        out = tmp_path / "document.pdf"
        if not out.exists():
            raise ToolFailed("soffice --convert-to wrote no PDF", tool="soffice")
        return out.read_bytes()


@atexit.register
def _shutdown_all() -> None:
    for conv in list(_live):
        conv.shutdown()
