#!/usr/bin/env bash
# Checks SQL statements with Vitess's own parser (the one PlanetScale's vtgate uses).
# Builds ops/sqlparse/ once into a cache and reuses the binary; then execs it with the
# given arguments, so its stdin, stdout and exit code are the binary's:
#
#   bash ops/sqlparse.sh < statements.jsonl
#     stdin:  JSON lines {"id": "<label>", "sql": "<statement>"}
#     stdout: one {"id","sql","error"} line per failed statement, then {"checked":N,"failed":M}
#     exit:   0 none failed, 1 some failed, 2 bad input or build failure
#
# The binary lives in ${D1CDC_CACHE_DIR:-<repo>/.cache}/sqlparse/<key>/sqlparse, where
# <key> is the first 16 hex digits of the sha256 of go.mod, go.sum and main.go: a change to
# any of them builds anew. Needs Go (PATH, or /usr/local/go/bin) and, the first time, the
# Go module proxy. The Go version itself is not part of the key.
# Messages from this script go to stderr only.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$repo/ops/sqlparse"
cache_root="${D1CDC_CACHE_DIR:-$repo/.cache}/sqlparse"

if command -v sha256sum >/dev/null 2>&1; then
    key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum)"
else
    key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | shasum -a 256)"
fi
key="${key:0:16}"
bin="$cache_root/$key/sqlparse"

if [[ ! -x "$bin" ]]; then
    go_bin="${GO:-}"
    if [[ -z "$go_bin" ]]; then
        if command -v go >/dev/null 2>&1; then
            go_bin="$(command -v go)"
        elif [[ -x /usr/local/go/bin/go ]]; then
            go_bin=/usr/local/go/bin/go
        else
            echo "sqlparse.sh: no Go toolchain found (PATH, /usr/local/go/bin or \$GO)" >&2
            exit 2
        fi
    fi
    mkdir -p "$cache_root/$key"
    tmp="$(mktemp "$cache_root/$key/.sqlparse.XXXXXX")"
    trap 'rm -f "$tmp"' EXIT
    echo "sqlparse.sh: building $bin (first use; vitess.io/vitess from the module proxy)..." >&2
    start=$SECONDS
    if ! GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
        "$go_bin" -C "$src" build -trimpath -o "$tmp" . >&2; then
        echo "sqlparse.sh: build failed" >&2
        exit 2
    fi
    # Rename into place: a concurrent caller sees either no binary or a whole one.
    mv -f "$tmp" "$bin"
    trap - EXIT
    echo "sqlparse.sh: built in $((SECONDS - start)) s" >&2
fi

exec "$bin" "$@"
