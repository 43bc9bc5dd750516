"""Whether the PDF converter (LibreOffice) can be used now: a circuit breaker.

The converter restarts a dead listener and retries a document once by itself (``forms.pdf``).
When conversions still fail ``failures`` times in a row, LibreOffice is taken as unavailable for
``retry_after_s`` seconds: requests that need it are refused at once (HTTP 503 with
``Retry-After``, before any document number is reserved) instead of each waiting for another
restart. After the pause the next request tries again: a success closes the breaker, a failure
opens it for another pause. ``/api/v1/health`` shows the state.
"""

from __future__ import annotations

import math
import threading
import time

from forms.errors import BaoxueError


class ConverterUnavailable(BaoxueError):
    """LibreOffice cannot convert documents now; try again after ``retry_after`` seconds."""

    code = "converter_unavailable"
    http_status = 503


class ConverterBreaker:
    """Consecutive conversion failures, and until when the converter counts as unavailable."""

    def __init__(self, failures: int = 3, retry_after_s: float = 30.0):
        self.failures = failures
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._consecutive = 0
        self._open_until = 0.0
        self._last_error = ""

    def configure(self, *, failures: int | None = None, retry_after_s: float | None = None) -> None:
        with self._lock:
            if failures is not None:
                self.failures = max(1, int(failures))
            if retry_after_s is not None:
                self.retry_after_s = float(retry_after_s)

    def retry_after(self) -> int:
        """Seconds until the converter is tried again (0: usable now)."""
        with self._lock:
            return max(0, math.ceil(self._open_until - time.monotonic()))

    def check(self) -> None:
        """Raise ``ConverterUnavailable`` while the breaker is open."""
        wait = self.retry_after()
        if wait > 0:
            raise self.unavailable()

    def unavailable(self) -> ConverterUnavailable:
        """The error for a refused or failed request (before the breaker opens: a short wait)."""
        wait = self.retry_after() or max(1, math.ceil(min(5.0, self.retry_after_s)))
        return ConverterUnavailable(
            f"文书转换服务（LibreOffice）暂时不可用：自动重启后仍连续{self._consecutive}次失败。"
            f"请在{wait}秒后重试；本次请求未占用文号。", retry_after=wait, failures=self._consecutive)

    def failed(self, reason: str = "") -> None:
        with self._lock:
            self._consecutive += 1
            self._last_error = reason[:300]
            if self._consecutive >= self.failures:
                self._open_until = time.monotonic() + self.retry_after_s

    def succeeded(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._open_until = 0.0
            self._last_error = ""

    def state(self) -> dict:
        """For ``/health``: {"status": "ok" | "failing" | "unavailable", ...}."""
        wait = self.retry_after()
        with self._lock:
            status = "unavailable" if wait > 0 else ("failing" if self._consecutive else "ok")
            out = {"status": status, "consecutive_failures": self._consecutive}
            if wait > 0:
                out["retry_after"] = wait
                out["message"] = f"文书转换服务暂时不可用，{wait}秒后重试"
            if self._last_error:
                out["last_error"] = self._last_error
            return out


BREAKER = ConverterBreaker()
