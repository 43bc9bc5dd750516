#!/usr/bin/env bash
# Installs what is needed and runs the whole test suite: lint, then every test on SQLite, then
# every database test again on PostgreSQL (DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test,
# or TEST_POSTGRES_URL). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
PY=${BAOXUE_VENV:-.venv}/bin/python
WORKERS=${PYTEST_WORKERS:-2}

echo "[test] ruff"
"$PY" -m ruff check .

echo "[test] suite on SQLite"
env -u DATABASE_URL "$PY" -m pytest -n "$WORKERS" -p no:cacheprovider "$@"

PG_URL=${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}
echo "[test] database tests on PostgreSQL ($PG_URL)"
set +e
DATABASE_URL="$PG_URL" "$PY" -m pytest -n "$WORKERS" -p no:cacheprovider -m db "$@"
rc=$?
set -e
# exit 5 = no test selected (only possible when filtering with extra arguments)
if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then exit $rc; fi
echo "[test] all passed"
