// What the eBPF receiver reads from the node besides its BPF maps: the cgroup2 mount, the agent's own
// listening sockets (orientation of connections older than the agent) and the interfaces' byte
// counters (coverage). Parsers are plain functions over the files' text, so tests feed them samples.
import { existsSync, statfsSync } from 'node:fs';
import type { attachCgroupFlows } from '@netmon/native';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;

/** statfs(2) f_type of a cgroup2 file system (CGROUP2_SUPER_MAGIC, include/uapi/linux/magic.h). */
export const CGROUP2_SUPER_MAGIC = 0x63677270;

/** True when `path` is on a cgroup2 file system; false when it is not or cannot be stat'ed. */
export function isOnCgroup2(path: string): boolean {
  try {
    return statfsSync(path).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * The cgroup2 directory `path` stands for: itself, or on a hybrid host, whose /sys/fs/cgroup is a tmpfs of v1
 * controllers with cgroup2 at its `unified` child, that child — so the host's /sys/fs/cgroup mounted into a
 * pod names the hierarchy's root on unified and hybrid nodes alike.
 */
export function hybridCgroup2(path: string, isCgroup2: (p: string) => boolean = isOnCgroup2): string {
  if (isCgroup2(path)) return path;
  const unified = `${path.replace(/\/+$/, '')}/unified`;
  return isCgroup2(unified) ? unified : path;
}

/**
 * The hierarchy's root has no `cgroup.type` file; every cgroup below it has one. mountinfo's root field
 * cannot tell: in a private cgroup namespace a container's own cgroup shows as `/`, and the host's
 * hierarchy mounted there shows as `/..`.
 */
export function isHierarchyRoot(mount: string, exists: (path: string) => boolean): boolean {
  return !exists(`${mount}/cgroup.type`);
}

/**
 * The first cgroup2 mount in /proc/self/mountinfo text that shows the hierarchy's root, or undefined
 * when none does (no cgroup2 at all, or only a container's own cgroup).
 */
export function cgroup2Mount(
  mountinfo: string,
  exists: (path: string) => boolean = existsSync,
): string | undefined {
  return cgroup2Mounts(mountinfo).find((m) => isHierarchyRoot(m.path, exists))?.path;
}

/**
 * Every cgroup2 mount in /proc/self/mountinfo text: where it is mounted, and which directory of the
 * hierarchy it shows, as seen from this process's cgroup namespace (`/` for that namespace's root; a
 * subtree for a bind mount; `/..`-style paths for cgroups above the namespace's root).
 */
export function cgroup2Mounts(mountinfo: string): { path: string; root: string }[] {
  const out: { path: string; root: string }[] = [];
  for (const line of mountinfo.split('\n')) {
    // "36 25 0:31 / /sys/fs/cgroup/unified rw,nosuid,... shared:10 - cgroup2 cgroup2 rw,..."
    const dash = line.indexOf(' - ');
    if (dash < 0 || !line.slice(dash + 3).startsWith('cgroup2 ')) continue;
    const fields = line.slice(0, dash).split(' ');
    if (fields.length < 5) continue;
    out.push({ path: unescapeMountPath(fields[4]), root: unescapeMountPath(fields[3]) });
  }
  return out;
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/**
 * The ephemeral port range (net.ipv4.ip_local_port_range, which IPv6 sockets use too) from its /proc/sys
 * text, "32768\t60999"; the kernel's default when the text is missing or unreadable.
 */
export function parsePortRange(text: string | undefined): { low: number; high: number } {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text ?? '');
  const low = m ? Number(m[1]) : Number.NaN;
  const high = m ? Number(m[2]) : Number.NaN;
  if (!(low >= 1 && high <= 65535 && low <= high)) return { low: 32768, high: 60999 };
  return { low, high };
}

/** Ports with a socket waiting for peers, per protocol: TCP in LISTEN, UDP bound and not connected. */
export interface ListeningPorts {
  tcp: Set<number>;
  udp: Set<number>;
}

/**
 * Listening ports from the text of /proc/net/tcp, tcp6 (state 0A, LISTEN) or udp, udp6 (state 07 with
 * no remote end: a bound, unconnected socket).
 */
export function parseListening(text: string, protocol: 'tcp' | 'udp', into: Set<number>): void {
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    // "  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 ..."
    const f = lines[i].trim().split(/\s+/);
    if (f.length < 4) continue;
    const state = f[3];
    const unconnected = /^0+:0000$/.test(f[2]);
    if (protocol === 'tcp' ? state !== '0A' : state !== '07' || !unconnected) continue;
    const colon = f[1].lastIndexOf(':');
    const port = Number.parseInt(f[1].slice(colon + 1), 16);
    if (Number.isInteger(port) && port > 0) into.add(port);
  }
}

/**
 * Bytes received plus sent per interface, from the text of /proc/net/dev.
 */
export function parseInterfaceBytes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets …
    if (f.length < 16) continue;
    const rx = Number(f[0]);
    const tx = Number(f[8]);
    if (Number.isFinite(rx) && Number.isFinite(tx)) out.set(name, rx + tx);
  }
  return out;
}

/** Effective capabilities from /proc/self/status text. */
export function effectiveCapabilities(status: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/** Why this process cannot load and attach the programs, or undefined when its capabilities allow it. */
export function missingBpfCapabilities(caps: bigint | undefined): string | undefined {
  if (caps === undefined) return undefined; // not Linux-like /proc: let the kernel decide
  const has = (cap: number) => ((caps >> BigInt(cap)) & 1n) === 1n;
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN))) return undefined;
  return 'loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)';
}

/** What resolving an attach point reads: files under /proc, and whether a file exists. */
export interface NodeFiles {
  /** Text of a file under /proc (or undefined when it cannot be read). */
  readProc(path: string): string | undefined;
  /** Whether a file exists (a mount's `cgroup.type`, which tells the hierarchy's root from a cgroup). */
  exists(path: string): boolean;
}

/**
 * The cgroup2 directory a receiver's programs attach to: `configured` (its `unified` child on a hybrid host,
 * see hybridCgroup2), else the hierarchy's root from
 * /proc/self/mountinfo. Throws, saying what to do, when there is none a program could see every socket
 * from, or when this process lacks the capabilities to load programs (`instead`: the alternative to offer).
 */
export function cgroupAttachPoint(
  files: NodeFiles,
  configured: string | undefined,
  receiver: string,
  instead: string,
): string {
  const mountinfo = files.readProc('/proc/self/mountinfo') ?? '';
  const path = (configured && hybridCgroup2(configured)) || cgroup2Mount(mountinfo, (p) => files.exists(p));
  if (!path) {
    const mount = cgroup2Mounts(mountinfo)[0];
    const mountHost =
      "so eBPF programs there would see this container's sockets alone: mount the host's cgroup2 (e.g. hostPath /sys/fs/cgroup at /host/sys/fs/cgroup) and set cgroup_path to it";
    throw new Error(
      !mount
        ? `${receiver} receiver: no cgroup2 filesystem is mounted (none in /proc/self/mountinfo): mount one (mount -t cgroup2 none /sys/fs/cgroup) or set cgroup_path to a cgroup2 directory`
        : mount.root === '/'
          ? `${receiver} receiver: the cgroup2 mount at ${mount.path} is not the hierarchy's root but a cgroup below it (it has a cgroup.type file; a container with its own cgroup namespace sees its own cgroup as /), ${mountHost}`
          : `${receiver} receiver: the cgroup2 mount at ${mount.path} shows only the subtree ${mount.root} (a container's own cgroup), ${mountHost}`,
    );
  }
  const missing = missingBpfCapabilities(effectiveCapabilities(files.readProc('/proc/self/status') ?? ''));
  if (missing) {
    throw new Error(
      `${receiver} receiver: ${missing}. Run netmon as root, or grant them (Kubernetes: securityContext.capabilities.add: [BPF, NET_ADMIN]); ${instead}`,
    );
  }
  return path;
}

/**
 * The node access the receiver needs (node-kernel.ts is the real one). A seam for unit tests, which drive
 * scheduling, orientation and the batches it builds with a stand-in; not reachable from the config. The
 * parsers here load nothing native, so the flows receiver's probe can use them at validate time.
 */
export interface EbpfKernel extends NodeFiles {
  attach: typeof attachCgroupFlows;
  /** True when the interface is a virtual one of this host (veth, bridge, tunnel, lo). */
  isVirtualInterface(name: string): boolean;
}
