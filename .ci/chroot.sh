# The chroots of CI (sourced by .ci/matrix and .ci/package-chroot, which
# set $top first): fresh mmdebstrap chroots of a Debian release, mounted,
# entered and removed the same way by both.  Run as root.
#
#   make_chroot ROOT RELEASE VARIANT [PACKAGES]   (PACKAGES: comma-separated;
#       with them the release's libpython3.X-testsuite for its default
#       Python is installed too)
#   in_chroot ROOT COMMAND...    (a clean environment: PATH, HOME, LANG,
#       TERM, DEBIAN_FRONTEND=noninteractive)
#   remove_chroot ROOT           (kills what still runs inside, unmounts,
#       then deletes; refuses while anything is still mounted below ROOT)
#   unmount_chroot ROOT
#
# ../shared/PLATFORM-NOTES.md says why: the archive's Release files are past
# their Valid-Until date, and proc, a private devpts and a tmpfs on /dev/shm
# are mounted (never the host's /dev), and unmounted before deleting.

# The applications of tests/python/test_apps.py, for the chroots that run
# them (.ci/matrix's forky leg, .ci/package-chroot --apps; host and bookworm
# get Debian 12's from .ci/install).
# shellcheck disable=SC2034  # used by the scripts that source this file
APPS_PACKAGES=python3-aiohttp,python3-uvicorn,python3-starlette,python3-httpx,python3-websockets,python3-asyncpg,python3-httptools,python3-redis,python3-anyio,gunicorn,postgresql,redis-server

# Debian's standard /etc/hosts (localhost is ::1 as well as 127.0.0.1).
CHROOT_HOSTS='127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters'

chroot_me=$(basename "$0")

kill_chroot_processes() {  # root
  # Whatever was left running inside (a server a test did not stop).
  for proc in /proc/[0-9]*; do
    if [ "$(readlink "$proc/root" 2>/dev/null)" = "$1" ]; then
      kill -9 "${proc#/proc/}" 2> /dev/null
    fi
  done
}

unmount_chroot() {  # root
  for m in dev/shm dev/pts proc; do
    if mountpoint -q "$1/$m"; then
      umount "$1/$m" || umount -l "$1/$m"
    fi
  done
}

remove_chroot() {  # root
  [ -d "$1" ] || return 0
  kill_chroot_processes "$1"
  unmount_chroot "$1"
  if grep -q " $1/" /proc/mounts; then
    echo "$chroot_me: $1 still has mounts; not removing it" >&2
    return 1
  fi
  rm -rf --one-file-system "$1"
}

make_chroot() {  # root release variant [packages]
  mc_root=$1
  mc_release=$2
  mc_variant=$3
  mc_packages=${4:-}
  remove_chroot "$mc_root" || return 1
  mc_hooks="printf '%s\\n' '$CHROOT_HOSTS' > \"\$1/etc/hosts\";"
  # No daemon starts in the chroot (postgresql's packages try to).
  mc_hooks="$mc_hooks printf '#!/bin/sh\\nexit 101\\n' > \"\$1/usr/sbin/policy-rc.d\";"
  mc_hooks="$mc_hooks chmod 755 \"\$1/usr/sbin/policy-rc.d\""
  set -- --variant="$mc_variant" --aptopt='Acquire::Check-Valid-Until "false"' \
    --customize-hook="$mc_hooks"
  if [ -n "$mc_packages" ]; then
    # shellcheck disable=SC2016  # $1 is mmdebstrap's, in the hook
    set -- "$@" --include="$mc_packages" --customize-hook='chroot "$1" sh -c \
      "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq > /dev/null \
       libpython\$(py3versions -dv)-testsuite"'
  fi
  echo "== mmdebstrap $mc_release ($mc_variant) into $mc_root"
  if ! mmdebstrap --quiet "$@" "$mc_release" "$mc_root"; then
    echo "$chroot_me: mmdebstrap $mc_release failed" >&2
    return 1
  fi
  mount -t proc proc "$mc_root/proc" &&
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$mc_root/dev/pts" &&
    mount -t tmpfs tmpfs "$mc_root/dev/shm"
}

in_chroot() {  # root command...
  ic_root=$1
  shift
  chroot "$ic_root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    DEBIAN_FRONTEND=noninteractive "$@"
}
