# Sourced by ops/test.sh and ops/demo.sh: a project virtualenv with d1cdc installed.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  echo "venv: creating .venv with $("$PY" --version)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.d1cdc-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "venv: installing d1cdc and its test dependencies" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,bench]'
  touch "$stamp"
fi
