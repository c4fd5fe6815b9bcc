#!/bin/sh
# Installs what the test suite needs on Debian (run as root), then Ferry itself with infra/install.sh; each step once,
# saying what it does, then the other Node.js majors the suite also runs on (20 and 24: the one of them not running
# this is fetched from the npm registry, its native addons built once). The Debian packages (README, "Quick start", says the same):
#   libnbd-bin             nbdcopy and nbdinfo, the NBD clients the tests and the README's tour drive
#   python3-libnbd         nbdsh, for NBD protocol tests
#   qemu-utils             qemu-img: images written to and compared over NBD
#   curl                   the README tour's health checks
#   ceph-mon ceph-osd radosgw  a single-host Ceph RADOS Gateway, the real S3 server of the object-store tests and of
#                          npm run bench:cloudsnap (test/support/ceph-rgw.ts starts it on loopback)
#   etcd-server            etcd, the cluster store of the many-node tests (test/support/etcd.ts starts it on loopback)
#   nbdkit fio             the baseline NBD server and the load of npm run bench:engine
#   g++ make python3       the native addons' toolchain (here so that one apt run installs everything)
set -eu
cd "$(dirname "$0")/.."

PACKAGES="libnbd-bin python3-libnbd qemu-utils curl ceph-mon ceph-osd radosgw etcd-server nbdkit fio g++ make python3"

printf '\n==> %s\n' "test/install.sh: Debian packages for the tests ($PACKAGES)"
missing=""
for package in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed'; then
    missing="$missing $package"
  fi
done
if [ -z "$missing" ]; then
  echo "    already installed"
else
  echo "    installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -q --no-install-recommends $missing
fi

sh infra/install.sh

printf '\n==> %s\n' "test/install.sh: the other supported Node.js LTS majors for the suite (test/other-node.sh prepare)"
sh test/other-node.sh prepare
