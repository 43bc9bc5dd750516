"""Gunicorn settings of the service: one definition for ``scripts/run.sh`` and ``bench/load.py``
(gunicorn reads ``./gunicorn.conf.py`` from the directory it starts in; command-line options win).

Threads are cheap here: a thread issuing a document only waits for its web process's renderer
processes (``RENDER_PROCESSES``), without the interpreter lock. At most ``RENDER_PENDING`` (8) of a
process's threads wait for renders; the others stay free for reads, so keep ``threads`` above it
(16: 8 left for reads while 8 documents render or wait).
"""

import os

workers = int(os.environ.get("BAOXUE_WEB_WORKERS", "2"))
threads = int(os.environ.get("BAOXUE_WEB_THREADS", "16"))
timeout = int(os.environ.get("BAOXUE_WEB_TIMEOUT", "300"))
