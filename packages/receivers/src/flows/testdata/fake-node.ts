// A made-up node for the probes: the files `mode: auto` reads, built from what the node has, so each
// decision is tested without changing the machine the tests run on.
import { join } from 'node:path';
import type { NodeFiles } from '../probe.js';
import { CILIUM_DEFAULTS, PATHS } from '../probe.js';

const CAPS = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_BPF: 39 } as const;
export type CapName = keyof typeof CAPS;

export interface FakeNodeOptions {
  /** Which of Cilium's conntrack maps are pinned (by Cilium's names). Default: none. */
  cilium?: readonly ('ct4' | 'ct6' | 'any4' | 'any6')[];
  /** Where they are pinned. Default: Cilium's /sys/fs/bpf/tc/globals. */
  ciliumDir?: string;
  /** /sys/kernel/btf/vmlinux exists. Default: true. */
  btf?: boolean;
  /** Where cgroup2 is mounted, or false for none (a cgroup v1 only host). Default: /sys/fs/cgroup. */
  cgroup2?: string | false;
  /** The effective capabilities, or 'unreadable' when /proc/self/status cannot be read. Default: all three. */
  caps?: readonly CapName[] | 'unreadable';
  /** nf_conntrack_count's value, or false when nf_conntrack is not loaded. Default: 12. */
  conntrack?: number | false;
}

/** A cgroup v1 hierarchy and, when given, a cgroup2 one, as /proc/self/mountinfo lists them. */
function mountinfo(cgroup2: string | false): string {
  const lines = [
    '22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw',
    '25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw',
    '31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct',
  ];
  if (cgroup2 !== false) {
    // Spaces in a mount point are written as \040.
    const escaped = cgroup2.replaceAll(' ', '\\040');
    lines.push(`30 25 0:26 / ${escaped} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The node's files, and the directories on a cgroup2 file system (the mount's, by default). A mount that
 * is no hierarchy root (a container's own cgroup) is made by adding `<mount>/cgroup.type` to `files`.
 */
export function fakeNode(
  opts: FakeNodeOptions = {},
): NodeFiles & { files: Map<string, string>; cgroup2Dirs: Set<string> } {
  const files = new Map<string, string>();
  const cgroup2Dirs = new Set<string>();
  const mount = opts.cgroup2 ?? '/sys/fs/cgroup';
  if (mount !== false) {
    files.set(mount, '');
    cgroup2Dirs.add(mount);
  }
  const names = { ct4: 'tcp4', ct6: 'tcp6', any4: 'any4', any6: 'any6' } as const;
  const dir = opts.ciliumDir ?? CILIUM_DEFAULTS.maps_dir;
  for (const map of opts.cilium ?? []) files.set(join(dir, CILIUM_DEFAULTS.map_names[names[map]]), '');
  if (opts.btf ?? true) files.set(PATHS.btf, '');
  files.set(PATHS.mountinfo, mountinfo(mount));
  const caps = opts.caps ?? ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_BPF'];
  if (caps !== 'unreadable') {
    let bits = 0n;
    for (const c of caps) bits |= 1n << BigInt(CAPS[c]);
    files.set(PATHS.status, `Name:\tnode\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapEff:\t${bits.toString(16).padStart(16, '0')}\n`);
  }
  if (opts.conntrack !== false) files.set(PATHS.conntrackCount, `${opts.conntrack ?? 12}\n`);
  return {
    files,
    cgroup2Dirs,
    exists: (path) => files.has(path),
    isCgroup2: (path) => cgroup2Dirs.has(path),
    read: (path) => {
      const text = files.get(path);
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
  };
}
