#!/bin/sh
# Runs the test suite again on other Node.js LTS majors than the one running this script (Ferry supports 20, 22 and
# 24). Usage:
#   sh test/other-node.sh prepare   fetch each Node.js from the npm registry (package node-linux-<arch>) and build the
#                                   native addons against it, once (test/install.sh calls this)
#   sh test/other-node.sh test [FILE...]  build Ferry and run Vitest (on FILEs, or all) on each of them, in a copy
#                                   of this checkout
# FERRY_TEST_NODES lists the majors (default "20 24"); the one running this script is left out (its suite is
# `npm run test:here`). Everything lives under .cache/node-<major>/ (git-ignored).
# Without FILEs, the other majors run every in-process suite (engine, cluster store, replication, CloudSnap, API,
# keys: where Node.js versions differ) and the end-to-end files named in OTHER_NODE_E2E (the cluster over real node
# processes, NBD clients, object stores through the SDKs); the CLI and process integration files under test/ run
# once, on the major running this script, which keeps CI within its time. So do the in-process suites that drive
# several engines through a real etcd (OTHER_NODE_ONCE: cluster logic that does not depend on the Node.js major;
# the cluster end-to-end file runs it on every major). FERRY_OTHER_NODE_ALL=1 runs everything.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
action=${1:-test}
[ $# -gt 0 ] && shift
files="$*" # Vitest file filters for 'test' (paths without spaces)
current=$(node -p 'process.versions.node.split(".")[0]')
arch=$(node -p 'process.arch')
majors=${FERRY_TEST_NODES:-20 24}

say() { printf '%s\n' "other-node: $*"; }

# .cache/node-M/node: the Node.js binary tree (bin/node, include/node for node-gyp)
# .cache/node-M/modules/node_modules: a copy of node_modules with the native addons built for it
# .cache/node-M/modules/lock: the package-lock.json it was made from
prepare() {
  m=$1
  dir="$root/.cache/node-$m"
  mkdir -p "$dir"
  # One preparation at a time (two runs of this script would otherwise rebuild the same copy at once).
  exec 9>"$dir/.lock"
  flock 9
  if [ ! -x "$dir/node/bin/node" ]; then
    say "fetching Node.js $m (npm package node-linux-$arch@$m)"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$m" >/dev/null && tar xzf ./*.tgz)
    rm -rf "$dir/node" && mv "$tmp/package" "$dir/node" && rm -rf "$tmp"
  fi
  if ! cmp -s package-lock.json "$dir/modules/lock" 2>/dev/null; then
    say "building the native addons for Node.js $("$dir/node/bin/node" --version) (a copy of node_modules; about 2 minutes)"
    rm -rf "$dir/modules" && mkdir -p "$dir/modules"
    cp -a node_modules "$dir/modules/node_modules"
    # npm rebuild runs the install scripts of the packages with native code, with this Node.js and its headers
    # (better-sqlite3 compiles SQLite). Ferry's own addon is built in the copy of the checkout, at test time.
    (cd "$dir/modules" && cp "$root/package.json" "$root/package-lock.json" . &&
      PATH="$dir/node/bin:$PATH" npm rebuild better-sqlite3 zstd-napi --nodedir="$dir/node" >/dev/null)
    cp package-lock.json "$dir/modules/lock"
  fi
  flock -u 9
}

# The end-to-end files the other majors run too (see the header).
OTHER_NODE_E2E="test/cluster-replication.test.ts test/engine-nbd.test.ts test/nbd-interop.test.ts test/object-stores.test.ts"

# In-process files that run once only (see the header): several engines through a real etcd, tens of seconds each.
OTHER_NODE_ONCE='-etcd\.test\.ts$|^node/engine/resync-(manager|detached)\.test\.ts$'

# The in-process files run two at a time (they start no servers of their own; on 2 cores, two files waiting on disks
# and timers fill the machine better than one), the end-to-end files one at a time, as in `npm run test:here`.
e2e=""
if [ "$action" = test ] && [ -z "$files" ] && [ -z "${FERRY_OTHER_NODE_ALL:-}" ]; then
  files="$(git ls-files -co --exclude-standard '*.test.ts' | grep -v '^test/' | grep -Ev -e "$OTHER_NODE_ONCE" | tr '\n' ' ')"
  e2e=$OTHER_NODE_E2E
fi

run() {
  m=$1
  dir="$root/.cache/node-$m"
  if [ ! -x "$dir/node/bin/node" ] || ! cmp -s package-lock.json "$dir/modules/lock" 2>/dev/null; then
    prepare "$m"
  fi
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-node$m-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work"
  ln -s "$dir/modules/node_modules" "$work/node_modules"
  say "Node.js $("$dir/node/bin/node" --version): building Ferry and its addon in $work"
  cd "$work"
  PATH="$dir/node/bin:$PATH"
  export PATH
  npm run --silent install --nodedir="$dir/node" >/dev/null
  npm run --silent build
  say "Node.js $(node --version): running the test suite"
  if [ -n "$e2e" ]; then
    # shellcheck disable=SC2086 # one word per file
    npx vitest run --maxWorkers=2 $files
    # shellcheck disable=SC2086
    npx vitest run $e2e
  else
    # shellcheck disable=SC2086 # one word per file
    npx vitest run $files
  fi
  cd "$root"
  rm -rf "$work"
  trap - EXIT
}

for m in $majors; do
  [ "$m" = "$current" ] && continue
  case $action in
    prepare) prepare "$m" ;;
    test) run "$m" ;;
    *) echo "usage: sh test/other-node.sh prepare|test" >&2; exit 2 ;;
  esac
done
