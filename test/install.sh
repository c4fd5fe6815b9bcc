#!/bin/sh
# Installs everything the test suite needs on Debian (run as root): the NBD clients and peers the tests drive and
# the toolchain for the native addons, then the npm dependencies from the lock file (which also builds Ferry).
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends libnbd-bin python3-libnbd qemu-utils nbdkit fio g++ make python3 ceph-mon ceph-osd radosgw >/dev/null
npm ci --no-audit --no-fund
# The suite also runs on the other supported Node.js LTS majors (20 and 24, less the one running this): fetch them
# from the npm registry and build the native addons for them once.
sh test/other-node.sh prepare
