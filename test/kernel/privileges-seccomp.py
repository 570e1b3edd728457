#!/usr/bin/env python3
"""Runs a command under the part of the RuntimeDefault seccomp profile that depends on capabilities and
matters to netmon: bpf() and perf_event_open(). containerd (contrib/seccomp/seccomp_default.go, 1.6.9
and 1.7 on), Docker (github.com/moby/profiles, seccomp/default.json) and CRI-O (github.com/containers/common,
pkg/seccomp/seccomp.json, 0.60 on) build the profile from the container's capabilities: bpf() is allowed
with CAP_BPF or CAP_SYS_ADMIN, perf_event_open() with CAP_PERFMON or CAP_SYS_ADMIN; without them the
call fails with EPERM (containerd's default action is an errno, EPERM; the others name errno 1 for these
calls). Every other call passes: this filter models those two rules, not the whole profile.

  privileges-seccomp.py CAPS COMMAND [ARGS...]    CAPS: the container's capabilities, comma-separated
                                                  Kubernetes names (BPF,NET_ADMIN), or '' for none

Needs CAP_SYS_ADMIN (root) to install the filter without no_new_privs; everything the command starts
inherits it.
"""
import ctypes
import os
import platform
import struct
import sys

# Per machine: AUDIT_ARCH_* (include/uapi/linux/audit.h) and the numbers of bpf and perf_event_open.
ARCHES = {
    "x86_64": (0xC000003E, {"bpf": 321, "perf_event_open": 298}),
    "aarch64": (0xC00000B7, {"bpf": 280, "perf_event_open": 241}),
}

# A call is allowed when the container has one of these capabilities.
ALLOWED_BY = {"bpf": {"BPF", "SYS_ADMIN"}, "perf_event_open": {"PERFMON", "SYS_ADMIN"}}

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def filter_program(arch, numbers):
    """Classic BPF over struct seccomp_data (int nr at 0, __u32 arch at 4): EPERM for `numbers`."""
    n = len(numbers)
    insns = [(BPF_LD_W_ABS, 0, 0, 4), (BPF_JEQ_K, 0, n + 1, arch), (BPF_LD_W_ABS, 0, 0, 0)]
    for i, nr in enumerate(numbers):
        # Match: jump to the EPERM return, past the remaining comparisons and the ALLOW.
        insns.append((BPF_JEQ_K, n - i, 0, nr))
    insns.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    insns.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM))
    return b"".join(struct.pack("HBBI", *i) for i in insns), len(insns)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    caps = {c.strip().upper().removeprefix("CAP_") for c in sys.argv[1].split(",") if c.strip()}
    machine = platform.machine()
    if machine not in ARCHES:
        sys.exit(f"privileges-seccomp.py: the syscall numbers of {machine} are not known")
    arch, numbers = ARCHES[machine]
    denied = [numbers[call] for call, allowed in ALLOWED_BY.items() if not caps & allowed]
    if denied:
        code, count = filter_program(arch, denied)
        buf = ctypes.create_string_buffer(code, len(code))

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        prog = SockFprog(count, ctypes.addressof(buf))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
            sys.exit(f"privileges-seccomp.py: prctl(PR_SET_SECCOMP): {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
