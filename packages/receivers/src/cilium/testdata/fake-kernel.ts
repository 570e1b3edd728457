// A stand-in for the node access the cilium receiver has (the CiliumKernel seam in ../kernel.ts): a
// bpffs directory with pinned maps the addon's readPinnedMap serves (its checks, errors and bound
// included), /proc/schedstat, and a monotonic clock whose jiffies tick at a chosen HZ. The receiver's
// own logic (scheduling, decoding, layout and clock detection, status, self-metrics) runs on it without
// Cilium or privilege; the addon's reader itself is tested on real pinned maps in test/kernel/.
import type { PinnedMapOptions, PinnedMapRead } from '@netmon/native';
import { BPF_FS_MAGIC } from '../bpffs.js';
import type { CiliumKernel } from '../kernel.js';
import { type CtEntry, mapRead } from './entries.js';

export const MAPS_DIR = '/sys/fs/bpf/tc/globals';

/** The pinned names Cilium gives its global conntrack maps (pkg/maps/ctmap/ctmap.go). */
export const MAP_NAMES = {
  tcp4: 'cilium_ct4_global',
  any4: 'cilium_ct_any4_global',
  tcp6: 'cilium_ct6_global',
  any6: 'cilium_ct_any6_global',
} as const;

/** What one read of a map does: serve these entries, reject with an error, or wait for a promise. */
export type MapStep = readonly CtEntry[] | Error | Promise<readonly CtEntry[]>;

interface Pin {
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** What reads serve when the script is empty: the map's contents. */
  entries: readonly CtEntry[];
  /** One-off steps, taken in order before `entries`. */
  script: MapStep[];
}

/** An error as the addon rejects with: a message and a `code` (and the map's `info` when it had one). */
export function pinnedMapError(code: 'ENOENT' | 'EPERM' | 'ESIZE' | 'EIO', message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * A /proc/schedstat text (version 15, two CPUs, one scheduling domain each) with `jiffies` on its
 * `timestamp` line, in the kernel's layout (kernel/sched/stats.c; Documentation/scheduler/sched-stats.rst).
 */
export function schedstat(jiffies: number): string {
  // 36 counters: 8 per idle type (idle, busy, newly idle), then active balancing, exec, fork, wakeups.
  const counters = [
    312, 298, 2, 14, 0, 1, 0, 309, 55421, 55108, 11, 301, 2, 9, 0, 55118, 1984, 1977, 1, 6, 0, 0, 0, 1976,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 71, 0, 12,
  ];
  const domain = (cpu: number) => `domain0 03 ${counters.map((n) => n + cpu).join(' ')}`;
  return [
    'version 15',
    `timestamp ${jiffies}`,
    'cpu0 0 0 4105328 1641090 2318870 1559911 1064718231811 91358311022 2463983',
    domain(0),
    'cpu1 0 0 3822217 1549731 2129904 1470122 1012874103652 87031285570 2272390',
    domain(1),
    '',
  ].join('\n');
}

/**
 * 64-bit jiffies start at INITIAL_JIFFIES, (unsigned int)(-300 * HZ) (include/linux/jiffies.h): just
 * under 2^32, so that 32-bit wraparound shows five minutes after boot.
 */
export const initialJiffies = (hz: number) => 2 ** 32 - 300 * hz;

export class FakeCiliumKernel implements CiliumKernel {
  /** The kernel's HZ: how fast the jiffies of /proc/schedstat tick against the monotonic clock. */
  hz = 250;
  /** CLOCK_MONOTONIC (time since boot) when the fake was made: 10 days. */
  uptimeNs = 10 * 86_400e9;
  /** Directories and files exists() says are there (pins are there too). */
  readonly paths = new Set<string>([MAPS_DIR]);
  /** File system types (statfs f_type) by path; a directory of `paths` not in it is on a bpffs. */
  readonly fsTypes = new Map<string, number>();
  /** /proc files by path; a function is read each time; missing or undefined cannot be read. */
  readonly files = new Map<string, string | undefined | (() => string | undefined)>([
    ['/proc/schedstat', () => schedstat(this.jiffies())],
  ]);
  /** Every readMap call's options, with the (fake) time it was made at. */
  readonly reads: Array<PinnedMapOptions & { at: number }> = [];
  /** Every readProc path, in order. */
  readonly procReads: string[] = [];
  /** Every sleep's length (ms), in order. */
  readonly sleeps: number[] = [];
  private readonly pins = new Map<string, Pin>();
  private readonly createdAt = Date.now();
  /** Time sleep() added to the clock (it returns at once: the samples are what matters). */
  private slept = 0;

  /** Pins a map at `name` in `dir`, holding `entries` (key size from them, else from the name). */
  pin(
    name: string,
    entries: readonly CtEntry[] = [],
    opts: { keySize?: number; valueSize?: number; maxEntries?: number; dir?: string } = {},
  ): this {
    const keySize = opts.keySize ?? entries[0]?.key.length ?? (/6_global$/.test(name) ? 38 : 14);
    this.pins.set(this.path(name, opts.dir), {
      keySize,
      valueSize: opts.valueSize ?? 56,
      maxEntries: opts.maxEntries ?? 65536,
      entries,
      script: [],
    });
    return this;
  }

  /** Pins all four maps of MAP_NAMES, empty. */
  pinAll(): this {
    for (const name of Object.values(MAP_NAMES)) this.pin(name);
    return this;
  }

  /** Replaces what the map at `name` holds (the datapath and Cilium's GC at work). */
  set(name: string, entries: readonly CtEntry[], dir?: string): this {
    this.pinOf(name, dir).entries = entries;
    return this;
  }

  /** Queues one-off steps for the next reads of the map at `name`. */
  answer(name: string, ...steps: MapStep[]): this {
    this.pinOf(name).script.push(...steps);
    return this;
  }

  unpin(name: string, dir?: string): void {
    this.pins.delete(this.path(name, dir));
  }

  /** Reads of the map at `name` so far. */
  readsOf(name: string, dir?: string): number {
    const path = this.path(name, dir);
    return this.reads.filter((r) => r.path === path).length;
  }

  /** The 64-bit jiffies count now. */
  jiffies(): number {
    return initialJiffies(this.hz) + Math.floor((this.monotonicNs() * this.hz) / 1e9);
  }

  /** Now in the unit of Cilium's default clock: whole seconds of CLOCK_MONOTONIC. */
  ktimeNow(): number {
    return Math.floor(this.monotonicNs() / 1e9);
  }

  /** Now in jiffies mode's unit: jiffies >> 8 (bpf/lib/mono.h). */
  jiffiesNow(): number {
    return Math.floor(this.jiffies() / 256);
  }

  /** A lifetime `seconds` from now in jiffies mode: Cilium adds (seconds * HZ) >> 8 (bpf_sec_to_mono). */
  jiffiesIn(seconds: number): number {
    return this.jiffiesNow() + Math.floor((seconds * this.hz) / 256);
  }

  readMap = async (options: PinnedMapOptions): Promise<PinnedMapRead> => {
    this.reads.push({ ...options, at: Date.now() });
    const pin = this.pins.get(options.path);
    if (!pin) {
      throw pinnedMapError(
        'ENOENT',
        `cannot open the pinned map ${options.path}: No such file or directory`,
      );
    }
    if (pin.keySize !== options.keySize || pin.valueSize !== options.valueSize) {
      throw Object.assign(
        pinnedMapError(
          'ESIZE',
          `${options.path} has key/value sizes ${pin.keySize}/${pin.valueSize}, not the ${options.keySize}/${options.valueSize} this layout reads`,
        ),
        {
          info: { type: 9, keySize: pin.keySize, valueSize: pin.valueSize, maxEntries: pin.maxEntries },
        },
      );
    }
    const step = pin.script.shift() ?? pin.entries;
    if (step instanceof Error) throw step;
    const entries = await step;
    // As the addon: never more than the caller's bound, else the map's size; more left says truncated.
    const limit = options.maxEntries ?? pin.maxEntries;
    return mapRead(entries.slice(0, limit), {
      truncated: entries.length > limit,
      keySize: pin.keySize,
      maxEntries: pin.maxEntries,
      name: options.path.split('/').pop(),
    });
  };

  readProc = (path: string): string | undefined => {
    this.procReads.push(path);
    const f = this.files.get(path);
    return typeof f === 'function' ? f() : f;
  };

  exists = (path: string): boolean => this.paths.has(path) || this.pins.has(path);

  fsType = (path: string): number | undefined =>
    this.fsTypes.get(path) ?? (this.exists(path) ? BPF_FS_MAGIC : undefined);

  monotonicNs = (): number => this.uptimeNs + (Date.now() - this.createdAt + this.slept) * 1e6;

  sleep = async (ms: number): Promise<void> => {
    this.sleeps.push(ms);
    this.slept += ms;
  };

  private path(name: string, dir = MAPS_DIR): string {
    return `${dir}/${name}`;
  }

  private pinOf(name: string, dir?: string): Pin {
    const pin = this.pins.get(this.path(name, dir));
    if (!pin) throw new Error(`no map pinned at ${name}`);
    return pin;
  }
}
