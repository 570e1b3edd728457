// Which pod a socket belongs to, from its cgroup: the kubelet puts every container of a pod in a cgroup
// below the pod's own, and names the pod's cgroup after the pod's UID. The eBPF programs report the
// cgroup v2 id of each local socket (the inode number of the cgroup's directory in the cgroup2
// filesystem); this module maps those ids to pod UIDs by walking the cgroup tree, so a hostNetwork pod,
// whose address is its node's, still gets its own bytes.
//
// The names the kubelet gives (pkg/kubelet/cm, public source: https://github.com/kubernetes/kubernetes):
//   systemd driver  kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, - as _>.slice/…
//                   kubepods.slice/kubepods-pod<uid>.slice/… (guaranteed), with a --cgroup-root prefix
//                   in the slice names (kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod….slice)
//   cgroupfs driver kubepods/burstable/pod<uid>/…, kubepods/pod<uid>/…, under any prefix (/kubelet/…)
// Below the pod's cgroup the runtime makes one per container (cri-containerd-<id>.scope, crio-<id>.scope,
// crio-conmon-<id>.scope, docker-<id>.scope, or a bare <id> with cgroupfs): they all belong to the pod.
import { type BigIntStats, type Dirent, lstatSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface CgroupPodsOptions {
  /** Least time between two walks of the tree that unknown ids trigger (default 1000 ms). */
  minRescanMs?: number;
  /** Most cgroups kept (default 65536); pods' cgroups are kept first, the rest is counted in `truncated`. */
  maxEntries?: number;
  /**
   * How long a pod cgroup that a walk no longer finds still answers (default 15000 ms): a pod's last
   * bytes are read out of the kernel after its cgroups may be gone, and cgroup ids are never reused.
   */
  retainDeletedMs?: number;
  /** Monotonic clock in ms (tests). */
  now?: () => number;
}

/** Where a directory sits in the kubelet's layout, as the walk goes down. */
const Place = {
  Outside: 0,
  /** kubepods, kubepods.slice, <root>-kubepods.slice: pods and QoS classes below. */
  Kubepods: 1,
  /** burstable, besteffort (cgroupfs) or their slices: pods below. */
  Qos: 2,
  /** At or below a pod's cgroup. */
  Pod: 3,
} as const;
type Place = (typeof Place)[keyof typeof Place];

interface At {
  place: Place;
  /** The pod's UID when place is Pod. */
  uid: string | undefined;
}

const OUTSIDE: At = { place: Place.Outside, uid: undefined };

const SYSTEMD_KUBEPODS = /^(?:[^.]+-)?kubepods\.slice$/;
const SYSTEMD_QOS = /(?:^|-)kubepods-(?:burstable|besteffort)\.slice$/;
// The systemd driver escapes - as _ in slice names (systemd reads - as the path separator).
const SYSTEMD_POD = /(?:^|-)kubepods(?:-burstable|-besteffort|-guaranteed)?-pod([0-9A-Za-z_]+)\.slice$/;
const CGROUPFS_POD = /^pod([0-9A-Za-z][0-9A-Za-z-]*)$/;

/** The place of a directory named `name` whose parent is at `at`. */
function step(at: At, name: string): At {
  if (at.place === Place.Pod) return at;
  if (at.place === Place.Kubepods || at.place === Place.Qos) {
    let m = SYSTEMD_POD.exec(name);
    if (m !== null) return { place: Place.Pod, uid: m[1].replaceAll('_', '-') };
    m = CGROUPFS_POD.exec(name);
    if (m !== null) return { place: Place.Pod, uid: m[1] };
    if (
      at.place === Place.Kubepods &&
      (name === 'burstable' || name === 'besteffort' || SYSTEMD_QOS.test(name))
    ) {
      return { place: Place.Qos, uid: undefined };
    }
    return OUTSIDE;
  }
  if (name === 'kubepods' || SYSTEMD_KUBEPODS.test(name)) return { place: Place.Kubepods, uid: undefined };
  return OUTSIDE;
}

/** The UID of the pod a cgroup path (absolute, or relative to the cgroup2 mount) belongs to, if any. */
export function podUidOfPath(path: string): string | undefined {
  let at = OUTSIDE;
  for (const name of path.split('/')) if (name !== '') at = step(at, name);
  return at.uid;
}

interface Deleted {
  uid: string;
  at: number;
}

/**
 * Maps cgroup v2 ids to the UID of the pod whose cgroup contains them. One entry per cgroup (pods and
 * the rest, so a host process's cgroup is known not to be a pod's without another walk), rebuilt by
 * walking the tree under `root` when an unknown id is asked for — at most once per `minRescanMs`, so a
 * flood of ids from outside `root` cannot make it walk on every call.
 */
export class CgroupPods {
  readonly root: string;
  private readonly minRescanMs: number;
  private readonly maxEntries: number;
  private readonly retainDeletedMs: number;
  private readonly now: () => number;
  /** cgroup id → pod UID, '' for a cgroup outside every pod. */
  private entries = new Map<number, string>();
  /** Pod cgroups the last walks no longer found, kept for `retainDeletedMs`. */
  private deleted = new Map<number, Deleted>();
  /**
   * Ids a walk made after they were asked for did not find: outside `root` (or over the cap). A cgroup
   * exists before its socket sends, so such an id will not appear later; asking again walks no more.
   */
  private absent = new Set<number>();
  private lastScanAt = Number.NEGATIVE_INFINITY;
  private scanCount = 0;
  private scanMs = 0;
  private truncatedCount = 0;

  constructor(root: string, options: CgroupPodsOptions = {}) {
    this.root = resolve(root);
    this.minRescanMs = options.minRescanMs ?? 1000;
    this.maxEntries = options.maxEntries ?? 65536;
    this.retainDeletedMs = options.retainDeletedMs ?? 15_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Cgroups kept from the last walk, in pods or not. */
  get size(): number {
    return this.entries.size;
  }

  /** Walks of the tree so far. */
  get scans(): number {
    return this.scanCount;
  }

  /** How long the last walk took, in milliseconds. */
  get lastScanMs(): number {
    return this.scanMs;
  }

  /** Cgroups the last walk found but did not keep (over `maxEntries`). */
  get truncated(): number {
    return this.truncatedCount;
  }

  /** The UID of the pod cgroup `cgroupId` belongs to; undefined when it is in none (or unknown). */
  podUid(cgroupId: number): string | undefined {
    // Over 2^53 an id is no longer exact as a number: it could name another cgroup.
    if (!Number.isSafeInteger(cgroupId) || cgroupId <= 0) return undefined;
    const hit = this.entries.get(cgroupId);
    if (hit !== undefined) return hit === '' ? undefined : hit;
    const gone = this.deleted.get(cgroupId);
    if (gone !== undefined && this.now() - gone.at <= this.retainDeletedMs) return gone.uid;
    if (this.absent.has(cgroupId)) return undefined;
    if (this.now() - this.lastScanAt < this.minRescanMs) return undefined;
    this.rescan();
    const found = this.entries.get(cgroupId);
    if (found === undefined) {
      if (this.absent.size >= this.maxEntries) this.absent.clear();
      this.absent.add(cgroupId);
      return undefined;
    }
    return found === '' ? undefined : found;
  }

  /** Walks the tree now, whatever the rate limit, and replaces the map. */
  rescan(): void {
    const started = performance.now();
    const now = this.now();
    this.lastScanAt = now;
    const next = new Map<number, string>();
    // Pods first: a cgroup outside every pod only saves a walk, a pod's cgroup attributes bytes.
    const others: number[] = [];
    let truncated = 0;
    const max = this.maxEntries;

    const keep = (path: string, uid: string | undefined, follow = false): void => {
      if (uid === undefined ? others.length + next.size >= max : next.size >= max) {
        truncated++;
        return;
      }
      const id = cgroupIdOf(path, follow);
      if (id === undefined) return;
      if (uid === undefined) others.push(id);
      else next.set(id, uid);
    };

    const rootAt = this.rootPlace();
    if (rootAt !== undefined) {
      keep(this.root, rootAt.uid, true);
      const stack: { path: string; at: At }[] = [{ path: this.root, at: rootAt }];
      for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
        let children: Dirent[];
        try {
          children = readdirSync(top.path, { withFileTypes: true });
        } catch {
          // Removed since its parent was read (ENOENT), or unreadable: its cgroups are not counted.
          continue;
        }
        for (const child of children) {
          // A Dirent of a symbolic link is not a directory: links are never followed.
          if (!child.isDirectory()) continue;
          const path = join(top.path, child.name);
          const at = step(top.at, child.name);
          keep(path, at.uid);
          stack.push({ path, at });
        }
      }
    }
    for (const id of others) {
      if (next.size >= max) {
        truncated++;
        continue;
      }
      next.set(id, '');
    }

    // Pod cgroups gone since the last walk answer a while longer; those kept long enough are dropped.
    for (const [id, gone] of this.deleted) {
      if (now - gone.at > this.retainDeletedMs || next.has(id)) this.deleted.delete(id);
    }
    if (this.retainDeletedMs > 0) {
      for (const [id, uid] of this.entries) {
        if (uid !== '' && !next.has(id) && this.deleted.size < max) this.deleted.set(id, { uid, at: now });
      }
    }
    this.entries = next;
    this.scanCount++;
    this.truncatedCount = truncated;
    this.scanMs = performance.now() - started;
  }

  /** The place of the root itself, from its own path; undefined when it is not a directory. */
  private rootPlace(): At | undefined {
    try {
      if (!statSync(this.root).isDirectory()) return undefined;
    } catch {
      return undefined;
    }
    let at = OUTSIDE;
    for (const name of this.root.split('/')) if (name !== '') at = step(at, name);
    return at;
  }
}

/**
 * The cgroup id of the directory at `path` (its inode number), or undefined if gone or too large. Only
 * `root` is followed if it is a link (the user named it); below it, links are not cgroups.
 */
function cgroupIdOf(path: string, follow: boolean): number | undefined {
  let st: BigIntStats | undefined;
  try {
    st = (follow ? statSync : lstatSync)(path, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
  if (st === undefined || !st.isDirectory() || st.ino > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(st.ino);
}
