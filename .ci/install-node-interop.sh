#!/usr/bin/env bash
# Install a Node >= 22.18 runtime and graphile-worker@0.18.0 into .ci/node/
# (git-ignored), using only the npm registry. Idempotent and quiet; prints one
# line at the end, or exits non-zero with a message on stderr.
set -euo pipefail

GW_NODE_VERSION="${GW_NODE_VERSION:-22}"           # npm package `node@22` ships a Node 22 binary
GW_GRAPHILE_WORKER_VERSION="${GW_GRAPHILE_WORKER_VERSION:-0.18.0}"
MIN_NODE="22.18.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix="$here/node"
node_bin="$prefix/node_modules/.bin/node"
gw_pkg="$prefix/node_modules/graphile-worker/package.json"

die() { echo "install-node-interop: $*" >&2; exit 1; }

command -v npm >/dev/null 2>&1 || die "npm not found on PATH (apt-get install npm)"

version_ge() {  # version_ge A B  -> true if A >= B (dotted numeric)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

installed_ok() {
  [ -x "$node_bin" ] && [ -f "$gw_pkg" ] || return 1
  local nv gv
  nv="$("$node_bin" --version 2>/dev/null | sed 's/^v//')" || return 1
  version_ge "$nv" "$MIN_NODE" || return 1
  gv="$("$node_bin" -p "require('$gw_pkg').version" 2>/dev/null)" || return 1
  [ "$gv" = "$GW_GRAPHILE_WORKER_VERSION" ]
}

if ! installed_ok; then
  mkdir -p "$prefix"
  if [ ! -f "$prefix/package.json" ]; then
    printf '{\n  "name": "gw-node-interop",\n  "private": true\n}\n' > "$prefix/package.json"
  fi
  log="$prefix/npm-install.log"
  if ! npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "node@$GW_NODE_VERSION" "graphile-worker@$GW_GRAPHILE_WORKER_VERSION" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "npm install failed (full log: $log)"
  fi
  installed_ok || {
    v="$("$node_bin" --version 2>/dev/null || echo missing)"
    die "after install: node at $node_bin is '$v' (need >= v$MIN_NODE) or graphile-worker $GW_GRAPHILE_WORKER_VERSION missing"
  }
fi

echo "node-interop: node $("$node_bin" --version) at $node_bin; graphile-worker $("$node_bin" -p "require('$gw_pkg').version")"
