// Texts of the /proc files the eBPF receiver reads, in the kernel's own layout (proc_pid_mountinfo(5),
// proc_net(5), proc_pid_status(5)): verbatim samples of real hosts, and builders for the cases a test
// needs (a given listening port, given interface counters, given capabilities).

/** A systemd host with the unified hierarchy (Debian 12, Ubuntu 22.04+): cgroup2 at /sys/fs/cgroup. */
export const MOUNTINFO_UNIFIED = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 28 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8123456k,nr_inodes=2030864,mode=755,inode64
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
29 22 0:6 / /sys/kernel/security rw,nosuid,nodev,noexec,relatime shared:8 - securityfs securityfs rw
30 24 0:26 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,inode64
32 22 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
33 22 0:29 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw
34 22 0:30 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:11 - bpf bpf rw,mode=700
`;

/** A hybrid host (systemd's legacy default): v1 controllers under /sys/fs/cgroup, cgroup2 at …/unified. */
export const MOUNTINFO_HYBRID = `21 26 0:20 / /proc rw,relatime - proc proc rw
22 26 0:21 / /sys rw,relatime - sysfs sysfs rw
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
30 22 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:19 - cgroup2 cgroup2 rw,nsdelegate
45 22 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw
`;

/** cgroup v1 only (no cgroup2 line at all): an old kernel or a host booted with cgroup_no_v1 unset. */
export const MOUNTINFO_V1_ONLY = `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
`;

/**
 * A container sharing the host's cgroup namespace: its /sys/fs/cgroup is a bind of its own subtree (root
 * field not "/"), then the host's hierarchy mounted at /host/sys/fs/cgroup.
 */
export const MOUNTINFO_SUBTREE_THEN_HOST = `700 650 0:28 /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f6b2c1e_6a1d_4f1e_9a52_3c7f0c1d2e3a.slice/cri-containerd-aaaa.scope /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup ro
701 650 0:28 / /host/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime master:9 - cgroup2 cgroup2 rw,nsdelegate
`;

/** The same container without the host's mount: only its own subtree. */
export const MOUNTINFO_SUBTREE_ONLY = MOUNTINFO_SUBTREE_THEN_HOST.split('\n')[0];

/**
 * A container with its own cgroup namespace (the default of Docker and containerd on cgroup v2): its
 * /sys/fs/cgroup shows root `/` — the namespace's root, which is the container's own cgroup four levels
 * down — and the host's hierarchy mounted at /host/sys/fs/cgroup shows as `/../../../..`.
 */
export const MOUNTINFO_PRIVATE_NS_THEN_HOST = `1063 1054 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup ro,nsdelegate,memory_recursiveprot
1071 1054 0:28 /../../../.. /host/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime master:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

/** The same container without the host's mount: its own cgroup, shown as `/`. */
export const MOUNTINFO_PRIVATE_NS_ONLY = MOUNTINFO_PRIVATE_NS_THEN_HOST.split('\n')[0];

/** mountinfo's escapes for a path: space, tab, newline and backslash as three octal digits. */
export function escapeMountPath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** A mountinfo with cgroup2 mounted at `path` (escaped as the kernel writes it), after a few other mounts. */
export function mountinfoWithCgroup2(path: string): string {
  return `${MOUNTINFO_V1_ONLY}41 30 0:40 / ${escapeMountPath(path)} rw,nosuid,nodev,noexec,relatime shared:20 - cgroup2 cgroup2 rw,nsdelegate\n`;
}

/** /proc/net/tcp of a host: sshd on 0.0.0.0:22 (LISTEN), one established connection, one TIME_WAIT. */
export const PROC_NET_TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21034 1 ffff8a0b4b6e0000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   112        0 23110 1 ffff8a0b4b6e0940 100 0 0 10 0
   2: 0A00020F:0016 0A000201:D431 01 00000000:00000000 02:00096AFC 00000000     0        0 41822 4 ffff8a0b4b6e5280 20 4 31 10 -1
   3: 0A00020F:A5C2 5DB8D822:01BB 06 00000000:00000000 03:000011D6 00000000     0        0 0 3 ffff8a0b51c2d5f0
`;

/** /proc/net/tcp6: a server on [::]:8080 (LISTEN) and a connection from [::1]:41000 to it. */
export const PROC_NET_TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 52011 1 ffff8a0b4e8c8000 100 0 0 10 0
   1: 00000000000000000000000001000000:A028 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 52104 1 ffff8a0b4e8c9180 20 4 30 10 -1
`;

/**
 * /proc/net/udp: systemd-resolved on 127.0.0.53:53 and chronyd on 0.0.0.0:323 (bound, unconnected: 07
 * with a zero remote end), and a connected socket from port 45000 to 8.8.8.8:53 (01).
 */
export const PROC_NET_UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  247: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 19330 2 ffff8a0b43a2d800 0
  517: 00000000:0143 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20044 2 ffff8a0b43a2e400 0
 1210: 0A00020F:AFC8 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 61233 2 ffff8a0b43a2f000 0
`;

/** /proc/net/udp6: chronyd on [::1]:323, unconnected. */
export const PROC_NET_UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  517: 00000000000000000000000001000000:0143 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20045 2 ffff8a0b43a2ec00 0
`;

/** One socket line for `procNet`: the local port, the state (hex, as the kernel writes it), the peer. */
export interface SocketLine {
  port: number;
  /** 0A LISTEN, 01 ESTABLISHED, 07 CLOSE (an unconnected UDP socket), … */
  state: string;
  /** The remote port; 0 (the default) with a zero address means no remote end. */
  remotePort?: number;
}

const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

/** A /proc/net/{tcp,tcp6,udp,udp6} text holding `sockets` (addresses any, or 10.0.0.1 for a peer). */
export function procNet(file: 'tcp' | 'tcp6' | 'udp' | 'udp6', sockets: readonly SocketLine[]): string {
  const v6 = file.endsWith('6');
  const any = v6 ? '0'.repeat(32) : '00000000';
  const peer = v6 ? '0000000000000000FFFF00000100000A' : '0100000A';
  const header = v6
    ? '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'
    : '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
  const lines = sockets.map((s, i) => {
    const remote = s.remotePort ? `${peer}:${hex4(s.remotePort)}` : `${any}:0000`;
    return `${String(i).padStart(4)}: ${any}:${hex4(s.port)} ${remote} ${s.state} 00000000:00000000 00:00000000 00000000     0        0 ${30000 + i} 1 ffff8a0b4b6e0000 100 0 0 10 0`;
  });
  return `${[header, ...lines].join('\n')}\n`;
}

/** A real /proc/net/dev (two header lines, then one line per interface), as a VM with Docker shows it. */
export const PROC_NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 12815807034  882909    0    0    0     0          0         0 12815807034  882909    0    0    0     0       0          0
  eth0: 4421375747  201316    0    0    0     0          0         0 19248431  117286    0    0    0     0       0          0
docker0:       0       0    0    0    0     0          0         0     3466      27    0    0    0     0       0          0
veth3f2a1c9:    1398      17    0    0    0     0          0         0     4812      41    0    0    0     0       0          0
`;

/** A /proc/net/dev with the given received and sent bytes per interface (packets made up from them). */
export function procNetDev(counters: Record<string, readonly [rx: number, tx: number]>): string {
  const head = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed`;
  const lines = Object.entries(counters).map(
    ([name, [rx, tx]]) =>
      `${name.padStart(6)}: ${String(rx).padStart(8)} ${String(Math.ceil(rx / 1000)).padStart(7)}    0    0    0     0          0         0 ${String(tx).padStart(8)} ${String(Math.ceil(tx / 1000)).padStart(7)}    0    0    0     0       0          0`,
  );
  return `${[head, ...lines].join('\n')}\n`;
}

/** Capability numbers (linux/capability.h). */
export const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;

/** CapEff of root on a 5.9+ kernel: every capability up to CAP_CHECKPOINT_RESTORE (40). */
export const CAPS_ROOT = (1n << 41n) - 1n;

/** The capability mask with only the bits `caps` set. */
export function capMask(...caps: number[]): bigint {
  return caps.reduce((m, c) => m | (1n << BigInt(c)), 0n);
}

/** A /proc/self/status text whose effective set is `capEff` (the other sets alike but CapInh/CapAmb 0). */
export function procStatus(capEff: bigint): string {
  const hex = capEff.toString(16).padStart(16, '0');
  return `Name:	node
Umask:	0022
State:	R (running)
Tgid:	4242
Ngid:	0
Pid:	4242
PPid:	1
TracerPid:	0
Uid:	0	0	0	0
Gid:	0	0	0	0
FDSize:	64
Groups:	0
NStgid:	4242
NSpid:	4242
NSpgid:	4242
NSsid:	1
VmPeak:	 1123456 kB
VmRSS:	   61234 kB
Threads:	11
SigQ:	0/63512
SigPnd:	0000000000000000
ShdPnd:	0000000000000000
SigBlk:	0000000000000000
SigIgn:	0000000001001000
SigCgt:	0000000188004602
CapInh:	0000000000000000
CapPrm:	${hex}
CapEff:	${hex}
CapBnd:	${hex}
CapAmb:	0000000000000000
NoNewPrivs:	0
Seccomp:	0
Seccomp_filters:	0
Speculation_Store_Bypass:	thread vulnerable
Cpus_allowed:	ff
Cpus_allowed_list:	0-7
Mems_allowed:	00000000,00000001
Mems_allowed_list:	0
voluntary_ctxt_switches:	150
nonvoluntary_ctxt_switches:	3
`;
}
