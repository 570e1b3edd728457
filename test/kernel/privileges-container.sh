#!/usr/bin/env bash
# Starts a command the way a container runtime (runc under containerd or CRI-O) starts a container of the
# netmon DaemonSet, as far as privileges go, so test/kernel/privileges.test.ts can check what each
# collection mode needs with exactly what the chart grants:
#   - uid 0, every capability dropped but those named (securityContext.capabilities: {drop: [ALL],
#     add: [...]}): bounding, permitted and effective sets are the list, inheritable and ambient empty;
#     and no_new_privs (allowPrivilegeEscalation: false);
#   - the network namespace named (the node's with hostNetwork: true, else one of the pod's own);
#   - a mount namespace of its own with containerd's default masked paths (/proc/timer_list, /proc/kcore,
#     … hidden) and read-only paths (/proc/sys, /proc/sysrq-trigger, …) — pkg/oci/spec.go in
#     https://github.com/containerd/containerd — and hostPath volumes bind-mounted where the pod spec puts
#     them, read-only or writable;
#   - with --cgroup DIR, a cgroup of the container's own, a cgroup namespace rooted there and cgroup2
#     mounted at /sys/fs/cgroup in place of the host's cgroup mounts (cgroupns=private, the kubelet's
#     default on a cgroup v2 node): the container's /sys/fs/cgroup is its own cgroup, not the root;
#   - with --seccomp RuntimeDefault, the capability-dependent rules of the runtime's default seccomp
#     profile for bpf() and perf_event_open() (privileges-seccomp.py).
# What it does not isolate (the rest of the host's file system stays visible, the PID namespace is the
# host's) gives a process no privilege it would lack in a pod: the checks above are the ones that do.
# Usage: privileges-container.sh [--netns PATH] [--cgroup DIR] [--mount SRC:DST[:ro]]... [--caps A,B]
#                                [--seccomp RuntimeDefault|Unconfined] -- COMMAND [ARGS...]
# Needs root (it builds the container from the host's side). What it makes dies with the process (the
# namespaces and their mounts); the cgroup DIR is the caller's to remove.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

if [[ ${1-} == --inside ]]; then
  # Second stage, in the new mount (and cgroup) namespace: the container's file system view.
  shift
  caps=$1 seccomp=$2 ownCgroup=$3
  shift 3
  mounts=()
  while [[ $1 != -- ]]; do
    mounts+=("$1")
    shift
  done
  shift
  # hostPath volumes first: the runtime looks their sources up in the host's view (and /proc/sys/net in
  # the pod's network namespace, which with hostNetwork is the node's).
  for m in "${mounts[@]}"; do
    IFS=: read -r src dst mode <<<"$m"
    mkdir -p "$dst"
    mount --bind "$src" "$dst"
    if [[ ${mode-} == ro ]]; then mount -o remount,bind,ro "$dst"; fi
  done
  for p in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
    /proc/timer_stats /proc/sched_debug /sys/firmware /sys/devices/virtual/powercap /proc/scsi; do
    if [[ -d $p ]]; then
      mount -t tmpfs -o ro tmpfs "$p"
    elif [[ -e $p ]]; then
      mount --bind /dev/null "$p"
    fi
  done
  for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
    if [[ -e $p ]]; then
      mount --bind "$p" "$p"
      mount -o remount,bind,ro "$p"
    fi
  done
  if [[ $ownCgroup == 1 ]]; then
    # The host's cgroup mounts are not in a container's mount namespace: only its own cgroup2 is.
    umount -R -l /sys/fs/cgroup
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
  fi
  bounding=-all
  if [[ -n $caps ]]; then bounding="-all,+${caps//,/,+}"; fi
  run=(setpriv --bounding-set="$bounding" --inh-caps=-all --ambient-caps=-all --no-new-privs -- "$@")
  case $seccomp in
  RuntimeDefault) exec python3 "$here/privileges-seccomp.py" "$caps" "${run[@]}" ;;
  Unconfined) exec "${run[@]}" ;;
  *) echo "privileges-container.sh: --seccomp $seccomp: expected RuntimeDefault or Unconfined" >&2 && exit 2 ;;
  esac
fi

netns='' cgroup='' caps='' seccomp=Unconfined
mounts=()
while [[ $# -gt 0 && $1 != -- ]]; do
  case $1 in
  --netns) netns=$2 && shift 2 ;;
  --cgroup) cgroup=$2 && shift 2 ;;
  --mount) mounts+=("$2") && shift 2 ;;
  # setpriv wants capability names in lower case, without CAP_.
  --caps) caps=$(tr 'A-Z' 'a-z' <<<"${2//CAP_/}") && shift 2 ;;
  --seccomp) seccomp=$2 && shift 2 ;;
  *) echo "privileges-container.sh: unknown option $1" >&2 && exit 2 ;;
  esac
done
[[ ${1-} == -- ]] || { echo 'privileges-container.sh: -- COMMAND missing' >&2 && exit 2; }
shift

# The process joins its cgroup before the namespace is made, so the namespace is rooted there.
if [[ -n $cgroup ]]; then echo $$ >"$cgroup/cgroup.procs"; fi
enter=()
if [[ -n $netns ]]; then enter=(nsenter "--net=$netns"); fi
unshare=(unshare --mount --propagation private)
if [[ -n $cgroup ]]; then unshare+=(--cgroup); fi
exec "${enter[@]}" "${unshare[@]}" "$0" --inside "$caps" "$seccomp" "$([[ -n $cgroup ]] && echo 1 || echo 0)" \
  "${mounts[@]}" -- "$@"
