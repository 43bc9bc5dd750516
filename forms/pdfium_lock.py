"""One lock for every use of pdfium (pypdfium2) in the process.

pdfium is not thread-safe: two threads working on documents at the same time corrupt its memory
(seen here as ``malloc(): unaligned tcache chunk detected`` when a batch rendered on two threads).
Every function that opens a pdfium document holds ``PDFIUM_LOCK`` until it has closed it.
"""

from __future__ import annotations

import functools
import threading

PDFIUM_LOCK = threading.RLock()


def with_pdfium_lock(fn):
    """Decorator: run ``fn`` while holding the process-wide pdfium lock."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with PDFIUM_LOCK:
            return fn(*args, **kwargs)

    return wrapper
