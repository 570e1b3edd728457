// What `mode: auto` looks at on the node before it picks a collection mode, and how it decides. Every
// probe is a few reads of /proc, /sys and the bpffs through `NodeFiles`, so unit tests run each decision
// against a made-up node (testdata/fake-node.ts) and the real one reads the real files.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '@netmon/core';
import { type CiliumReceiverConfig, ciliumReceiverConfig } from '../cilium/config.js';
import { cgroup2Mount, cgroup2Mounts, hybridCgroup2, isOnCgroup2 } from '../ebpf/kernel.js';
import { AUTO_ORDER, type RunnableMode } from './config.js';

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

/** The conntrack probe's verdict, and whether the table tracked any connection when it looked. */
export interface NetfilterProbeResult extends ProbeResult {
  /**
   * Whether conntrack held any connection at probe time: false at 0 entries or without nf_conntrack; absent
   * when the probe cannot tell (`netfilter.netns` names a namespace whose table it does not read).
   */
  in_use?: boolean;
}

export interface NodeProbes {
  cilium: ProbeResult;
  ebpf: ProbeResult;
  netfilter: NetfilterProbeResult;
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

/** Where the cilium probe looks: the cilium block's maps_dir and map_names. */
export type CiliumMaps = Pick<CiliumReceiverConfig, 'maps_dir' | 'map_names'>;

/** The cilium receiver's defaults: Cilium's own pin directory and map names. */
export const CILIUM_DEFAULTS: CiliumMaps = ciliumReceiverConfig.parse({});

/**
 * Cilium's agent pins its TCP conntrack maps on every node it manages, so one of them present means a
 * Cilium node. The other-protocol maps are looked at only when the config leaves both TCP ones out.
 */
function probeCilium(files: NodeFiles, maps: CiliumMaps): ProbeResult {
  const { tcp4, tcp6, any4, any6 } = maps.map_names;
  const tcp = [tcp4, tcp6].filter(Boolean);
  const names = tcp.length > 0 ? tcp : [any4, any6].filter(Boolean);
  const dir = maps.maps_dir;
  if (names.length === 0) return { usable: false, found: 'cilium.map_names leaves every conntrack map out' };
  const present = names.filter((n) => files.exists(join(dir, n)));
  return present.length > 0
    ? { usable: true, found: `Cilium's conntrack maps are pinned at ${dir} (${present.join(', ')})` }
    : {
        usable: false,
        found: `no Cilium conntrack map pinned at ${dir} (${names.join(' or ')}): not a Cilium node, or its bpffs is not mounted into the agent there (mount the host's /sys/fs/bpf; cilium.maps_dir)`,
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
    cgroupPath = hybridCgroup2(cgroupPath, (p) => files.isCgroup2(p));
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

/**
 * Loaded is not enough: the kernel tracks connections only in a namespace where a netfilter rule uses
 * conntrack, and a datapath that routes around netfilter (Cilium's eBPF host routing, kube-proxy
 * replacement) leaves the table empty while the node is busy. An empty table at probe time is said, not
 * refused: netfilter stays the last resort, but a choice of it says what it may miss.
 */
function probeNetfilter(
  files: NodeFiles,
  caps: ReturnType<typeof effectiveCaps>,
  netns: string | undefined,
): NetfilterProbeResult {
  const said: string[] = [];
  let usable = true;
  let inUse: boolean | undefined;
  try {
    const count = files.read(PATHS.conntrackCount).trim();
    const entries = Number.parseInt(count, 10);
    const where = `${count} entries in the agent's network namespace`;
    if (netns) {
      // The count is of the agent's own namespace: it says nothing of the one the receiver would read.
      said.push(
        `nf_conntrack loaded (${where}; netfilter.netns names ${netns}, whose table the probe does not count)`,
      );
    } else if (entries > 0) {
      inUse = true;
      said.push(`nf_conntrack in use (${where})`);
    } else {
      inUse = false;
      said.push(`nf_conntrack loaded but holding no connection (${where})`);
    }
  } catch (err) {
    usable = false;
    inUse = false;
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
  return inUse === undefined
    ? { usable, found: said.join('; ') }
    : { usable, found: said.join('; '), in_use: inUse };
}

/**
 * What choosing netfilter means when its probe found conntrack usable but holding no connection, and what
 * to do instead; undefined when conntrack is in use, or when the probe could not tell.
 */
export function idleConntrack(p: NodeProbes): string | undefined {
  if (!p.netfilter.usable || p.netfilter.in_use !== false) return undefined;
  return (
    "conntrack holds no connections, so this node's traffic may bypass netfilter (Cilium's eBPF host routing, " +
    "kube-proxy replacement), or the agent is not in the node's network namespace (hostNetwork: true), and " +
    "netfilter may collect almost nothing. Give the agent what ebpf needs (the host's cgroup2 mount or " +
    'ebpf.cgroup_path naming it, and CAP_BPF with CAP_NET_ADMIN, or CAP_SYS_ADMIN) or, on a Cilium node, mount ' +
    "the host's /sys/fs/bpf where cilium.maps_dir says"
  );
}

/** Runs every probe: all three are reported in /status, whichever mode is chosen. */
export function probeNode(
  files: NodeFiles = nodeFiles,
  options: { cgroupPath?: string; cilium?: CiliumMaps; netns?: string } = {},
): NodeProbes {
  const caps = effectiveCaps(files);
  return {
    cilium: probeCilium(files, options.cilium ?? CILIUM_DEFAULTS),
    ebpf: probeEbpf(files, caps, options.cgroupPath),
    netfilter: probeNetfilter(files, caps, options.netns),
  };
}

/** The mode `auto` runs and why in one sentence, and where it falls back; `undefined` mode when no probe passed. */
export interface AutoChoice {
  mode: RunnableMode | undefined;
  reason: string;
  /** The usable modes after the chosen one, in order: what auto starts when the one before fails to start. */
  fallbacks: RunnableMode[];
}

/**
 * Cilium first (its maps already hold every connection of the node: reading them costs no program and no
 * table dump of ours), then eBPF (sees traffic that bypasses netfilter, names the pod by cgroup, costs no
 * table dumps), then conntrack — even an idle one, as the last resort, saying so.
 */
export function chooseAuto(p: NodeProbes): AutoChoice {
  const usable = AUTO_ORDER.filter((m) => p[m].usable);
  const [mode, ...fallbacks] = usable;
  if (mode === 'cilium')
    return {
      mode,
      reason: `${p.cilium.found}: reading them instead of instrumenting the node a second time`,
      fallbacks,
    };
  if (mode === 'ebpf') {
    // What choosing ebpf gives up, said where it applies: kube-proxy's DNAT happens in the node's
    // namespace, after the pod's socket, so a Service on another node stays the Service.
    // An idle table would give no backend either.
    const tradeOff =
      p.netfilter.usable && p.netfilter.in_use !== false
        ? '. netfilter would also give the backends of Services (mode: netfilter)'
        : '';
    return { mode, reason: `eBPF is usable: ${p.ebpf.found}${tradeOff}`, fallbacks };
  }
  if (mode === 'netfilter') {
    const idle = idleConntrack(p);
    return {
      mode,
      reason: `eBPF is not usable (${p.ebpf.found}); conntrack is: ${p.netfilter.found}${idle ? `. But ${idle}` : ''}`,
      fallbacks,
    };
  }
  return {
    mode: undefined,
    reason:
      `no collection mode is usable on this node. cilium: ${p.cilium.found}. ebpf: ${p.ebpf.found}. ` +
      `netfilter: ${p.netfilter.found}`,
    fallbacks: [],
  };
}
