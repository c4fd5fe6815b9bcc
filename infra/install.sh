#!/bin/sh
# Installs Ferry from this checkout on Debian (run as root), each step once, saying what it does:
#   1. the C/C++ toolchain node-gyp needs for the native addons (better-sqlite3's and Ferry's own): g++, make,
#      python3; only when one of them is missing;
#   2. the npm dependencies from package-lock.json (npm ci), which also builds the native addons and Ferry itself
#      (dist/); skipped when node_modules was installed by this script from the same package.json and lock file with
#      the same Node.js (the stamp node_modules/.ferry-install), and the build is there; then only Ferry's own addon and
#      dist/ are built again, so that changed sources take effect. FERRY_REINSTALL=1 forces npm ci.
# test/install.sh ends by running this script, so running both does each step once.
set -eu
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "infra/install.sh [1/2] C/C++ toolchain for the native addons (g++, make, python3)"
if command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
  echo "    already installed"
else
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends g++ make python3
fi

step "infra/install.sh [2/2] npm dependencies (npm ci), which compiles the native addons and builds Ferry: a few minutes"
stamp=node_modules/.ferry-install
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1) node $(node --version)"
if [ "${FERRY_REINSTALL:-}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && [ -f dist/cli/main.js ] && [ -f build/Release/ferry_native.node ]; then
  echo "    already done from this package-lock.json with Node.js $(node --version) (FERRY_REINSTALL=1 to do it again)"
  echo "    building Ferry from this checkout's sources (the addon and dist/)"
  npm run --silent install >/dev/null
  npm run --silent build
else
  # --foreground-scripts: the builds (node-gyp, tsc) print as they run instead of minutes of silence.
  npm ci --no-audit --no-fund --foreground-scripts
  echo "$want" >"$stamp"
fi

step "Ferry is installed: 'npm start' runs a node; 'npm link --ignore-scripts' puts the ferry command on PATH"
