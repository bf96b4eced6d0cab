#!/usr/bin/env bash
# The test command (README Quickstart, `make test`, `.ci/run`): on a fresh machine it
# installs everything, starts real Kafka + MariaDB, runs lint, types and tests, and stops
# the services it started. Any failure exits non-zero — including pytest's exit 5
# ("no tests collected"), which `set -e` turns into a failure like any other.
#
#   ops/test.sh [pytest args…]      e.g. ops/test.sh -k consume -x
set -euo pipefail
cd "$(dirname "$0")/.."

source ops/venv.sh            # creates .venv and installs d1cdc with its test extras

source ops/with-services.sh

echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import-linter (the layers)" >&2
.venv/bin/lint-imports
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== the TypeScript Worker app: npm ci (from the lockfile), build, tsc --noEmit, TS tests" >&2
bash ops/worker_app.sh setup
bash ops/worker_app.sh check
echo "== Vitess sqlparser (built once into .cache/, used by tests/test_vitess_sql.py)" >&2
bash ops/sqlparse.sh </dev/null >/dev/null
echo "== pytest" >&2
.venv/bin/python -m pytest -p no:cacheprovider "$@"
