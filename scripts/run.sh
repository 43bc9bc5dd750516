#!/usr/bin/env bash
# Installs what is needed and runs Baoxue on the embedded default: SQLite and local files under
# output/, demo data loaded, a background worker for batch jobs, LibreOffice kept warm for PDFs.
# Environment: BAOXUE_HOST (127.0.0.1), BAOXUE_PORT (8000), DATABASE_URL, REDIS_URL, ...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${BAOXUE_VENV:-.venv}/bin/python
HOST=${BAOXUE_HOST:-127.0.0.1}
PORT=${BAOXUE_PORT:-8000}
export BAOXUE_PDF_PREWARM=1

"$PY" -m cases.demo            # migrates the database, then loads the demo county once
"$PY" -m cases.store.jobs &    # the queue worker (SQLite queue; Redis when REDIS_URL is set)
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT INT TERM

echo
echo "  Baoxue is running at http://$HOST:$PORT/   (API: http://$HOST:$PORT/api/v1/openapi.json)"
echo
# workers, threads and timeout: gunicorn.conf.py (BAOXUE_WEB_WORKERS, BAOXUE_WEB_THREADS)
"$PY" -m gunicorn --bind "$HOST:$PORT" \
  --access-logfile - 'app:create_app()'
