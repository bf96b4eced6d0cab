#!/usr/bin/env bash
# The main job (README Quickstart, `make demo`): on a fresh machine, install d1cdc, start
# real Kafka + MariaDB, run the whole pipeline on the demo D1 database under live writes,
# verify it (0 differences), and stop the services this script started.
#
#   ops/demo.sh [d1cdc demo options…]     e.g. ops/demo.sh --scale 5 --seconds 60
set -euo pipefail
cd "$(dirname "$0")/.."

source ops/venv.sh

started_services=0
if ! bash ops/services.sh status >/dev/null 2>&1; then
  started_services=1
fi
cleanup() { if ((started_services)); then bash ops/services.sh down || true; fi; }
trap cleanup EXIT
bash ops/services.sh up
eval "$(bash ops/services.sh env)"

.venv/bin/d1cdc doctor --only kafka,target
.venv/bin/d1cdc demo "$@"
