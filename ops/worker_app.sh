#!/usr/bin/env bash
# The TypeScript Worker app (producers/worker_app): Drizzle + D1 run in
# workerd through Miniflare.
#   bash ops/worker_app.sh setup     npm ci (skipped when node_modules matches package-lock.json) + build
#   bash ops/worker_app.sh build     bundle src/index.ts to dist/index.js
#   bash ops/worker_app.sh check     typecheck (tsc --noEmit) + TS tests (node --test)
#   bash ops/worker_app.sh harness … node harness.mjs … (e.g. --persist DIR [--port N])
#   bash ops/worker_app.sh load …    node load.mjs … (e.g. --url U --rate 50 --seconds 10)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$ROOT/producers/worker_app"
MIN_NODE=20
MIN_NPM=9

die() { echo "worker_app: $*" >&2; exit 1; }

need_tools() {
  command -v node >/dev/null 2>&1 || die "node not found: install Node.js >= $MIN_NODE (with npm >= $MIN_NPM)"
  command -v npm >/dev/null 2>&1 || die "npm not found: install npm >= $MIN_NPM (comes with Node.js >= $MIN_NODE)"
  local nv npmv
  nv="$(node -p 'process.versions.node' 2>/dev/null)" || die "node does not run"
  npmv="$(npm --version 2>/dev/null)" || die "npm does not run"
  (( ${nv%%.*} >= MIN_NODE )) || die "node $nv is too old: need >= $MIN_NODE"
  (( ${npmv%%.*} >= MIN_NPM )) || die "npm $npmv is too old: need >= $MIN_NPM"
}

lock_stamp() {
  # what node_modules was installed from: the lockfile and the node major
  { sha256sum "$APP/package-lock.json" | cut -d' ' -f1; node -p 'process.versions.node.split(".")[0]'; } | tr '\n' ' '
}

setup() {
  need_tools
  cd "$APP"
  local stamp_file="node_modules/.d1cdc-lock-stamp" want
  want="$(lock_stamp)"
  if [[ -f $stamp_file && "$(cat "$stamp_file")" == "$want" ]]; then
    echo "worker_app: node_modules current (package-lock.json unchanged), skipping npm ci" >&2
  else
    echo "worker_app: npm ci in producers/worker_app" >&2
    npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
    printf '%s' "$want" > "$stamp_file"
  fi
  build
}

build() {
  need_tools
  cd "$APP"
  [[ -d node_modules ]] || die "node_modules missing: run bash ops/worker_app.sh setup"
  npm run --silent build >&2 || die "build failed"
  echo "worker_app: built $APP/dist/index.js" >&2
}

check() {
  need_tools
  cd "$APP"
  [[ -d node_modules ]] || die "node_modules missing: run bash ops/worker_app.sh setup"
  npm run --silent typecheck || die "typecheck failed"
  npm test --silent || die "tests failed"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup) setup ;;
  build) build ;;
  check) check ;;
  harness) need_tools; exec node "$APP/harness.mjs" "$@" ;;
  load) need_tools; exec node "$APP/load.mjs" "$@" ;;
  *) echo "usage: bash ops/worker_app.sh setup|build|check|harness ARGS|load ARGS" >&2; exit 2 ;;
esac
