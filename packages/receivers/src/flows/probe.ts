// What `mode: auto` looks at on the node before it picks a collection mode, and how it decides. Every
// probe is a few reads of /proc and /sys through `NodeFiles`, so unit tests run each decision against a
// made-up node (testdata/fake-node.ts) and the real one reads the real files.
import { existsSync, readFileSync } from 'node:fs';
import { errorMessage } from '@netmon/core';
import { cgroup2Mount, cgroup2Mounts, isOnCgroup2 } from '../ebpf/kernel.js';

/** The file access the probes need: a seam for unit tests, never reachable from the config. */
export interface NodeFiles {
  exists(path: string): boolean;
  /** The file's text; throws (ENOENT, EACCES) when it cannot be read. */
  read(path: string): string;
  /** Whether the path is on a cgroup2 file system (statfs). */
  isCgroup2(path: string): boolean;
}

export const nodeFiles: NodeFiles = {
  exists: (path) => existsSync(path),
  read: (path) => readFileSync(path, 'utf8'),
  isCgroup2: isOnCgroup2,
};

export const PATHS = {
  /** Cilium pins its conntrack tables here (bpffs); a Cilium-managed node has at least one. */
  ciliumCt4: '/sys/fs/bpf/tc/globals/cilium_ct4_global',
  ciliumCt6: '/sys/fs/bpf/tc/globals/cilium_ct6_global',
  /**
   * The kernel's own BTF, which CO-RE programs are relocated against: reported, not required — the flow
   * counter uses only the kernel's stable UAPI types.
   */
  btf: '/sys/kernel/btf/vmlinux',
  mountinfo: '/proc/self/mountinfo',
  status: '/proc/self/status',
  /** Exists once nf_conntrack is loaded; counts the entries of the reader's network namespace. */
  conntrackCount: '/proc/sys/net/netfilter/nf_conntrack_count',
} as const;

/** Capability numbers (include/uapi/linux/capability.h). */
const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, BPF: 39 } as const;

/** One probe's verdict and what it saw, in words an operator can act on. */
export interface ProbeResult {
  usable: boolean;
  found: string;
}

export interface NodeProbes {
  cilium: ProbeResult;
  ebpf: ProbeResult;
  netfilter: ProbeResult;
}

/** The effective capability set of this process (CapEff in /proc/self/status), or why it is unknown. */
function effectiveCaps(files: NodeFiles): { caps: bigint } | { unknown: string } {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(files.read(PATHS.status));
    if (!m) return { unknown: `${PATHS.status} has no CapEff line` };
    return { caps: BigInt(`0x${m[1]}`) };
  } catch (err) {
    return { unknown: `cannot read ${PATHS.status}: ${errorMessage(err)}` };
  }
}

const has = (caps: bigint, cap: number) => ((caps >> BigInt(cap)) & 1n) === 1n;

function probeCilium(files: NodeFiles): ProbeResult {
  const maps = [PATHS.ciliumCt4, PATHS.ciliumCt6].filter((p) => files.exists(p));
  return maps.length > 0
    ? { usable: true, found: `Cilium's pinned conntrack maps: ${maps.join(', ')}` }
    : {
        usable: false,
        found: `no Cilium conntrack map pinned at ${PATHS.ciliumCt4} or ${PATHS.ciliumCt6} (not a Cilium node, or /sys/fs/bpf is not mounted into the agent)`,
      };
}

function probeEbpf(
  files: NodeFiles,
  caps: ReturnType<typeof effectiveCaps>,
  cgroupPath: string | undefined,
): ProbeResult {
  const said: string[] = [];
  let usable = true;
  said.push(
    files.exists(PATHS.btf)
      ? `BTF at ${PATHS.btf}`
      : `no kernel BTF at ${PATHS.btf} (not needed: the flow counter uses no CO-RE)`,
  );
  if (cgroupPath) {
    if (!files.exists(cgroupPath)) {
      usable = false;
      said.push(`ebpf.cgroup_path ${cgroupPath} does not exist`);
    } else if (!files.isCgroup2(cgroupPath)) {
      usable = false;
      let mount: string | undefined;
      try {
        mount = cgroup2Mount(files.read(PATHS.mountinfo), (p) => files.exists(p));
      } catch {
        // Said without the mount then.
      }
      said.push(
        `ebpf.cgroup_path ${cgroupPath} is not on a cgroup2 file system (${mount ? `cgroup2 is mounted at ${mount}` : 'on a hybrid host cgroup2 is /sys/fs/cgroup/unified'})`,
      );
    } else said.push(`cgroup2 directory ${cgroupPath} (ebpf.cgroup_path)`);
  } else {
    try {
      const text = files.read(PATHS.mountinfo);
      const root = cgroup2Mount(text, (p) => files.exists(p));
      const mounts = cgroup2Mounts(text);
      const mine = "a container's own cgroup, whose programs would see its own sockets alone";
      const advice = "mount the host's cgroup2 and set ebpf.cgroup_path";
      if (root) said.push(`cgroup2 at ${root}`);
      else if (mounts.length > 0 && mounts[0].root === '/') {
        // A private cgroup namespace shows the container's own cgroup as `/`: only cgroup.type tells.
        usable = false;
        said.push(
          `the cgroup2 mount at ${mounts[0].path} is not the hierarchy's root (it has a cgroup.type file: ${mine}); ${advice}`,
        );
      } else if (mounts.length > 0) {
        usable = false;
        said.push(
          `only the cgroup2 subtree ${mounts[0].root} is mounted (at ${mounts[0].path}: ${mine}); ${advice}`,
        );
      } else {
        usable = false;
        said.push(`no cgroup2 mount in ${PATHS.mountinfo} (the programs attach to a cgroup2 directory)`);
      }
    } catch (err) {
      usable = false;
      said.push(`cannot read ${PATHS.mountinfo}: ${errorMessage(err)}`);
    }
  }
  if ('unknown' in caps) {
    usable = false;
    said.push(`capabilities unknown: ${caps.unknown}`);
  } else if (has(caps.caps, CAP.SYS_ADMIN)) said.push('CAP_SYS_ADMIN');
  else if (has(caps.caps, CAP.BPF) && has(caps.caps, CAP.NET_ADMIN)) said.push('CAP_BPF and CAP_NET_ADMIN');
  else {
    usable = false;
    const missing = [
      has(caps.caps, CAP.BPF) ? undefined : 'CAP_BPF',
      has(caps.caps, CAP.NET_ADMIN) ? undefined : 'CAP_NET_ADMIN',
    ].filter((c) => c !== undefined);
    said.push(
      `loading BPF programs needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN: ${missing.join(' and ')} missing`,
    );
  }
  return { usable, found: said.join('; ') };
}

function probeNetfilter(files: NodeFiles, caps: ReturnType<typeof effectiveCaps>): ProbeResult {
  const said: string[] = [];
  let usable = true;
  try {
    const count = files.read(PATHS.conntrackCount).trim();
    said.push(`nf_conntrack loaded (${count} entries in the agent's network namespace)`);
  } catch (err) {
    usable = false;
    said.push(
      `cannot read ${PATHS.conntrackCount} (${errorMessage(err)}): nf_conntrack is not loaded, so the kernel tracks no connection`,
    );
  }
  if ('unknown' in caps) {
    usable = false;
    said.push(`capabilities unknown: ${caps.unknown}`);
  } else if (has(caps.caps, CAP.NET_ADMIN)) said.push('CAP_NET_ADMIN');
  else {
    usable = false;
    said.push('reading conntrack needs CAP_NET_ADMIN: missing');
  }
  return { usable, found: said.join('; ') };
}

/** Runs every probe: all three are reported in /status, whichever mode is chosen. */
export function probeNode(files: NodeFiles = nodeFiles, options: { cgroupPath?: string } = {}): NodeProbes {
  const caps = effectiveCaps(files);
  return {
    cilium: probeCilium(files),
    ebpf: probeEbpf(files, caps, options.cgroupPath),
    netfilter: probeNetfilter(files, caps),
  };
}

/** The mode `auto` runs, and why in one sentence; `undefined` mode when no probe passed. */
export interface AutoChoice {
  mode: 'ebpf' | 'netfilter' | undefined;
  reason: string;
}

/**
 * Cilium first (its maps already hold every flow of the node, at no cost of ours), then eBPF (sees traffic
 * that bypasses netfilter, names the pod by cgroup, costs no table dumps), then conntrack. A Cilium node
 * goes on to the next: the cilium receiver is not in this version.
 */
export function chooseAuto(p: NodeProbes): AutoChoice {
  const cilium = p.cilium.usable
    ? "Cilium's conntrack maps are pinned on this node, which would choose cilium, but this version has no cilium receiver; "
    : '';
  if (p.ebpf.usable) {
    // What choosing ebpf gives up, said where it applies: kube-proxy's DNAT happens in the node's
    // namespace, after the pod's socket, so a Service on another node stays the Service.
    const tradeOff = p.netfilter.usable
      ? '. netfilter would also give the backends of Services (mode: netfilter)'
      : '';
    return { mode: 'ebpf', reason: `${cilium}eBPF is usable: ${p.ebpf.found}${tradeOff}` };
  }
  if (p.netfilter.usable)
    return {
      mode: 'netfilter',
      reason: `${cilium}eBPF is not usable (${p.ebpf.found}); conntrack is: ${p.netfilter.found}`,
    };
  return {
    mode: undefined,
    reason:
      `${cilium}no collection mode is usable on this node. ebpf: ${p.ebpf.found}. netfilter: ${p.netfilter.found}. ` +
      `cilium: ${p.cilium.found}`,
  };
}
