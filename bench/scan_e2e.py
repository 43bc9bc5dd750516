"""End-to-end mode of ``bench/scan.py`` (issue 15): the service as a user meets it.

A real server process (gunicorn, ``app:create_app()``) and a real job worker (``python -m
cases.store.jobs``) run on a fresh SQLite database and output folder with the demo county loaded. The
bench issues its documents through ``POST /api/v1/documents`` (PDF from the server), writes on
them, uploads every file through ``POST /api/v1/scans``, waits for the job and takes the outcome
from ``GET /api/v1/scans/<id>`` (pages, fields, reasons) — nothing is read in the bench process.
Seconds per page are wall time from the first upload of a condition to its last job finished,
divided by its pages: the throughput of one worker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-qr-secret"
USER = "bench-scan"
ROLES = ("county_bureau", "township")


def port_hint() -> str:
    return secrets.token_hex(4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _json_default(o):
    if isinstance(o, (dt.date, dt.datetime)):
        return o.isoformat()
    raise TypeError(type(o).__name__)



class _MaskedAnswer(str):
    """An ID number / 学籍号 as the API answers it (masked): equal to a full value that masks to it."""

    def __eq__(self, other):
        from forms.validators import mask_id

        return isinstance(other, str) and (str.__eq__(self, other) or mask_id(other) == str(self))

    __hash__ = str.__hash__


def _answered(r: dict):
    """A field's value from /scans/<id>; ID numbers and 学籍号 come masked (they are compared masked)."""
    value = r.get("value")
    if r.get("kind") in ("id_number", "xueji_no") and isinstance(value, str) and value:
        return _MaskedAnswer(value)
    return value

class Server:
    """The server and one worker, started in a temporary folder, stopped by ``stop``."""

    def __init__(self, folder: Path, port: int, procs: list[subprocess.Popen], env: dict):
        self.folder, self.port, self.procs, self.env = folder, port, procs, env
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.headers = {"X-Baoxue-User": USER}
        self.issuers: dict[str, list[int]] = {}

    @classmethod
    def start(cls) -> Server:
        folder = Path(tempfile.mkdtemp(prefix="bx-bench-e2e-"))
        env = dict(os.environ, BAOXUE_OUTPUT_DIR=str(folder), DATABASE_URL=f"sqlite:///{folder / 'baoxue.db'}",
                   BAOXUE_QR_SECRET=SECRET, BAOXUE_PDF_PREWARM="1", PYTHONPATH=str(ROOT))
        env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "-m", "cases.demo"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        # An account of the whole installation and its API token (the API believes only tokens).
        flask = [sys.executable, "-m", "flask", "--app", "app:create_app()"]
        subprocess.run([*flask, "user", "create", USER, *[a for r in ROLES for a in ("--role", r)],
                        "--password-stdin"], cwd=ROOT, env=env, check=True, input=f"Qx-{port_hint()}-Lm9#Tz\n",
                       text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        token = subprocess.run([*flask, "token", "create", USER, "--label", "bench"], cwd=ROOT, env=env, check=True,
                               text=True, capture_output=True, timeout=300).stdout.strip().splitlines()[-1]
        port = _free_port()
        log = open(folder / "server.log", "wb")  # noqa: SIM115 - kept open for the processes' lifetime
        worker = subprocess.Popen([sys.executable, "-m", "cases.store.jobs"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "4", "--timeout",
                                "300", "--bind", f"127.0.0.1:{port}", "app:create_app()"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        srv = cls(folder, port, [web, worker], env)
        srv.headers = {"Authorization": f"Bearer {token}"}
        deadline = time.time() + 120
        while True:
            try:
                srv.get("/health")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline or web.poll() is not None:
                    srv.stop()
                    raise RuntimeError(f"server did not start; see {folder / 'server.log'}") from None
                time.sleep(0.5)
        for kind in ("township", "county", "school"):
            got = srv.get(f"/orgs?kind={kind}&limit=500")
            srv.issuers[kind] = [o["id"] for o in got["items"]]
        return srv

    def worker_cpu(self) -> float:
        """CPU seconds the job worker (and the tools it ran and waited for) used so far."""
        with open(f"/proc/{self.procs[1].pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def warm_up(self, timeout: float = 300) -> str:
        """The worker's warm-up line from its log (``worker warm-up: ...``), waited for: the models it
        loads before taking jobs are reported apart from the seconds per page."""
        deadline = time.time() + timeout
        while time.time() < deadline and self.procs[1].poll() is None:
            for line in (self.folder / "server.log").read_text(encoding="utf-8", errors="replace").splitlines():
                if "worker warm-up:" in line:
                    return line.partition("worker warm-up:")[2].strip()
                if "Huey consumer started" in line:  # taking jobs without having warmed up
                    return "(none: the worker loads its models in its first job)"
            time.sleep(0.5)
        return "(no warm-up reported)"

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)

    # ---- HTTP
    def _open(self, req: urllib.request.Request, timeout: float = 120):
        for k, v in self.headers.items():
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read(), r.headers.get("Content-Type", "")

    def get(self, path: str):
        body, ctype = self._open(urllib.request.Request(self.base + path))
        return json.loads(body) if "json" in ctype else body

    def post_json(self, path: str, payload: dict):
        req = urllib.request.Request(self.base + path, data=json.dumps(payload, default=_json_default).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        return json.loads(self._open(req)[0])

    def post_file(self, path: str, filename: str, data: bytes, fields: dict):
        boundary = uuid.uuid4().hex
        parts = []
        for k, v in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        req = urllib.request.Request(self.base + path, data=b"".join(parts), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return json.loads(self._open(req)[0])

    # ---- issuing
    def issue(self, form: str, variant: str | None, _doc_id: str, overrides: dict):
        """Issue a sample document through the API: (PDF, geometry, issued JSON, document id)."""
        from cases.store.models import to_json
        from forms import geometry
        from forms.registry import get_spec
        from forms.spec import Kind
        from tests.samples_data import sample_input

        spec = get_spec(form)
        var = spec.variant(variant)
        data = sample_input(form, variant, hand=False)
        data.update(overrides or {})
        data.pop(spec.number_field, None) if spec.number_field else None
        issued_on = (overrides or {}).get("issue_date") or dt.date(2025, 9, 26)
        last = None
        for kind in ("township", "county", "school"):
            for org in self.issuers.get(kind, [])[:1]:
                try:
                    doc = self.post_json("/documents", {"form": form, "variant": variant, "issuer_id": org,
                                                        "data": data, "format": "pdf", "issued_on": issued_on})
                    break
                except urllib.error.HTTPError as e:
                    last = e.read().decode("utf-8", "replace")[:400]
            else:
                continue
            break
        else:
            raise RuntimeError(f"could not issue {form} {variant}: {last}")
        pdf = self.get(f"/documents/{doc['id']}/pdf")
        shown = self.get(f"/documents/{doc['id']}")["data"]
        local = to_json(spec.validate({**data, **{k: v for k, v in shown.items()
                                                  if spec.field(k).kind != Kind.ID_NUMBER}}, var))
        issued = {**shown, **{k: v for k, v in local.items() if spec.field(k).kind == Kind.ID_NUMBER}}
        return pdf, geometry.record_geometry(pdf, spec, var), issued, doc["id"]

    def reader(self, docs):
        return E2EReader(self, docs)


class E2EReader:
    """Uploads through the API and collects the outcome the service reports."""

    mode = "e2e"

    def __init__(self, server: Server, docs):
        self.server = server
        self.org = server.issuers["county"][0]

    def read_all(self, ups):
        from bench.scan import FieldOut, Outcome

        t0, cpu0 = time.perf_counter(), self.server.worker_cpu()
        started = []
        for up in ups:
            out = self.server.post_file("/scans", up.filename, up.data, {"org_id": self.org})
            started.append((up, out["job_id"], out["upload_id"]))
        results = []
        for up, job_id, upload_id in started:
            while True:
                job = self.server.get(f"/jobs/{job_id}")
                if job["status"] in ("done", "failed"):
                    break
                time.sleep(0.05)
            outcome = self.server.get(f"/scans/{upload_id}")
            pages, reported = {}, []
            for p in outcome["pages"]:
                if p["status"] in ("read", "assigned") and p.get("document_id") and p.get("page_no"):
                    pages[(p["document_id"], p["page_no"])] = {
                        path: FieldOut(_answered(r), r.get("status", ""), bool(r.get("needs_review")),
                                       r.get("text", ""), r.get("reason", "") or "",
                                       bool(r.get("confirm", r.get("status") == "read" and r.get("needs_review"))))
                        for path, r in (p.get("fields") or {}).items()}
                elif p["status"] != "blank":
                    reported.append(p.get("reason") or p["status"])
            if job["status"] == "failed" and not outcome["pages"]:
                print(f"  job failed for {up.filename}: {job.get('error')} (upload {outcome.get('status')}, "
                      f"error {outcome.get('error')!r})", flush=True)
            results.append((up, Outcome(pages, reported, 0.0)))
        wall = time.perf_counter() - t0
        n = sum(len(up.pages) for up, _ in results)
        print(f"    end to end {wall / max(1, n):.2f} s/page wall, job worker CPU "
              f"{(self.server.worker_cpu() - cpu0) / max(1, n):.2f} s/page", flush=True)
        for up, out in results:
            out.seconds = wall / max(1, n) * len(up.pages)
        return results
