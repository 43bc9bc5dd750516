"""The one place that runs external programs (LibreOffice, tesseract, ...).

Modelled on OCRmyPDF's ``subprocess/_run.py`` and ``_exec/_probe.py``: a small ``run()`` with a
timeout and logging that turns failures into typed errors, and a ``probe()`` that says whether a
tool is installed and which version.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from forms.errors import MissingTool, ToolFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolInfo:
    name: str
    path: str | None
    version: str | None

    @property
    def installed(self) -> bool:
        return self.path is not None


_VERSION_ARGS = {
    "soffice": ["--version"],
    "tesseract": ["--version"],
    "pdftoppm": ["-v"],
}


def run(args: list[str], *, timeout: float = 120, cwd: Path | None = None, env: dict | None = None,
        input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a program; raise MissingTool if absent, ToolFailed on non-zero exit or timeout."""
    exe = shutil.which(args[0])
    if exe is None:
        raise MissingTool(f"{args[0]} is not installed (run scripts/setup.sh)", tool=args[0])
    log.debug("run %s", " ".join(str(a) for a in args))
    try:
        proc = subprocess.run([exe, *args[1:]], capture_output=True, timeout=timeout, cwd=cwd,
                              env=env, input=input, check=False)
    except subprocess.TimeoutExpired as e:
        raise ToolFailed(f"{args[0]} did not finish within {timeout:.0f} s", tool=args[0]) from e
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise ToolFailed(f"{args[0]} failed with exit code {proc.returncode}: {err}", tool=args[0])
    return proc


@functools.cache
def probe(name: str) -> ToolInfo:
    """Say whether ``name`` is installed and which version (cached per process)."""
    exe = shutil.which(name)
    if exe is None:
        return ToolInfo(name, None, None)
    try:
        proc = subprocess.run([exe, *_VERSION_ARGS.get(name, ["--version"])], capture_output=True,
                              timeout=60, check=False)
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        m = re.search(r"(\d+\.\d+(?:\.\d+)*)", text)
        version = m.group(1) if m else None
    except (OSError, subprocess.TimeoutExpired):
        version = None
    return ToolInfo(name, exe, version)


def spawn(args: list[str], *, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start a long-running program (e.g. a warm LibreOffice listener); raise MissingTool if absent.

    The caller owns the process: it must supervise it and end it (``terminate``/``kill``)."""
    exe = shutil.which(args[0])
    if exe is None:
        raise MissingTool(f"{args[0]} is not installed (run scripts/setup.sh)", tool=args[0])
    log.debug("spawn %s", " ".join(str(a) for a in args))
    try:
        return subprocess.Popen([exe, *args[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
    except OSError as e:
        raise MissingTool(f"{args[0]} could not be started: {e}", tool=args[0]) from e
