#!/usr/bin/env bash
# Sets up the container image's runtime stage, before the staged tree (scripts/image-stage.mjs) is copied
# in. The Dockerfile runs it once, as root; test/image.test.ts runs it with --prefix and --simulate.
#
# Usage: scripts/image-runtime.sh [--prefix DIR] [--simulate] PACKAGE...
#
#   1. apt: PACKAGE... (the shared libraries the native addon links, named in the Dockerfile, which the
#      test checks against `ldd` of the built addon), without recommended packages; apt's lists and
#      caches removed so they do not weigh in the image.
#   2. The `netmon` user and group, uid and gid 65532, for pipelines that need no kernel access (replaying
#      a flow file, relaying to an OTLP backend): `docker run --user netmon`, or runAsUser: 65532 in a pod.
#      The image's default user stays root: the kernel collection modes need capabilities, and Kubernetes
#      gives added capabilities to a non-root user only through file capabilities, which
#      allowPrivilegeEscalation: false (no_new_privs) disables.
#   3. The state directory /var/lib/netmon (the delta processor's counters, the devzero exporter's queue),
#      owned by netmon and group root, mode 0775: both users can write it. Root writes through the group,
#      because a pod that drops every capability but its collection mode's has no CAP_DAC_OVERRIDE.
#
#   --prefix DIR   set up DIR as the image's root: the user in DIR/etc, the state directory under DIR
#                  (default /)
#   --simulate     apt-get install -s: resolve PACKAGE... against apt's cache, install nothing
set -Eeuo pipefail

UID_GID=65532
STATE_DIR=/var/lib/netmon

die() {
  printf 'image-runtime: %s\n' "$*" >&2
  exit 1
}

prefix=/
simulate=0
packages=()
while (($#)); do
  case $1 in
    --prefix)
      (($# >= 2)) || die '--prefix needs a directory'
      prefix=$2
      shift
      ;;
    --simulate) simulate=1 ;;
    -*) die "unknown option '$1' (usage: scripts/image-runtime.sh [--prefix DIR] [--simulate] PACKAGE...)" ;;
    *) packages+=("$1") ;;
  esac
  shift
done
((${#packages[@]})) || die 'no packages named: give the Debian packages of the libraries the addon links'
[[ -d $prefix ]] || die "--prefix $prefix is not a directory"

export DEBIAN_FRONTEND=noninteractive
if ((simulate)); then
  apt-get install -s -q --no-install-recommends "${packages[@]}" >/dev/null ||
    die "apt cannot install ${packages[*]} (above)"
else
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi

# --prefix (shadow's own option) edits DIR/etc/passwd and DIR/etc/group. --system: no subordinate id
# ranges (nothing here runs containers); -K: the system range reaches 65532, which shadow would warn about.
users=()
[[ $prefix == / ]] || users=(--prefix "$prefix")
groupadd "${users[@]}" --system -K "SYS_GID_MAX=$UID_GID" --gid "$UID_GID" netmon
useradd "${users[@]}" --system -K "SYS_UID_MAX=$UID_GID" --uid "$UID_GID" --gid "$UID_GID" --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin --comment 'netmon (no kernel access)' netmon

install -d -o "$UID_GID" -g 0 -m 0775 "${prefix%/}$STATE_DIR"
printf 'image-runtime: %s; user netmon (%s:%s); %s (netmon:root 0775)\n' \
  "$( ((simulate)) && echo "apt would install ${packages[*]}" || echo "installed ${packages[*]}")" \
  "$UID_GID" "$UID_GID" "$STATE_DIR"
