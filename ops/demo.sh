#!/usr/bin/env bash
# The main job (README Quickstart, `make demo`): on a fresh machine, install d1cdc, start
# real Kafka + MariaDB, run the whole pipeline on the demo D1 database under live writes,
# verify it (0 differences), and stop the services this script started.
#
#   ops/demo.sh [d1cdc demo options…]     e.g. ops/demo.sh --scale 5 --seconds 60
set -euo pipefail
cd "$(dirname "$0")/.."

source ops/venv.sh

source ops/with-services.sh

.venv/bin/d1cdc doctor --only kafka,target
.venv/bin/d1cdc demo "$@"
