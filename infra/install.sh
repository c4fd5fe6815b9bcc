#!/bin/sh
# Installs Ferry from this checkout on Debian (run as root): the C/C++ toolchain that builds the two native addons
# (better-sqlite3 and Ferry's hole-punching addon) if it is missing, then the npm dependencies, which builds Ferry.
set -eu
cd "$(dirname "$0")/.."
if ! command -v g++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends g++ make python3 >/dev/null
fi
npm ci --no-audit --no-fund
