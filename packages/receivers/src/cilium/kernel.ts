// The node access the cilium receiver needs, as a seam: node-kernel.ts is the real one (the addon's
// pinned-map reader, /proc), unit tests hand it maps they built.
import type { readPinnedMap } from '@netmon/native';

export interface CiliumKernel {
  readMap: typeof readPinnedMap;
  /** Text of a file under /proc, or undefined. */
  readProc(path: string): string | undefined;
  exists(path: string): boolean;
  /**
   * statfs(2) f_type of the file system `path` is on (BPF_FS_MAGIC for a bpffs); undefined when it
   * cannot be told. A stand-in without it is taken as a bpffs.
   */
  fsType?(path: string): number | undefined;
  /** CLOCK_MONOTONIC in ns. */
  monotonicNs(): number;
  /** Waits `ms` (between the two samples HZ is measured from). */
  sleep(ms: number): Promise<void>;
}
