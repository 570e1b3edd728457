// Cilium's conntrack lifetimes in wall-clock terms. The datapath writes `lifetime = now + timeout` in one
// of two units (bpf/lib/mono.h): seconds of the monotonic clock (ktime, the default), or jiffies >> 8
// (with --enable-bpf-clock-probe). Jiffies tick at the kernel's HZ, which is not USER_HZ and not always
// 1000: it is measured here from /proc/schedstat's jiffies `timestamp` against the monotonic clock, as
// Cilium's own agent does, and snapped to the kernel's possible values.

/** Jiffies are shifted right by this before they are stored (bpf/lib/mono.h BPF_MONO_SCALER). */
export const MONO_SCALER = 8;
const HZ_VALUES = [100, 250, 300, 1000];

/** The jiffies count of /proc/schedstat's `timestamp` line, or undefined. */
export function schedstatJiffies(text: string | undefined): number | undefined {
  const m = /^timestamp (\d+)$/m.exec(text ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * The jiffies count of /proc/timer_list's first `jiffies:` line: the same counter, for kernels built
 * without scheduler statistics (no /proc/schedstat).
 */
export function timerListJiffies(text: string | undefined): number | undefined {
  const m = /^jiffies: (\d+)$/m.exec(text ?? '');
  return m ? Number(m[1]) : undefined;
}

/** HZ from two (jiffies, monotonic ns) samples, snapped to 100, 250, 300 or 1000; undefined if unusable. */
export function measureHz(
  a: { jiffies: number; ns: number },
  b: { jiffies: number; ns: number },
): number | undefined {
  const seconds = (b.ns - a.ns) / 1e9;
  if (!(seconds > 0.01) || b.jiffies <= a.jiffies) return undefined;
  const raw = (b.jiffies - a.jiffies) / seconds;
  let best = HZ_VALUES[0];
  for (const hz of HZ_VALUES) if (Math.abs(hz - raw) < Math.abs(best - raw)) best = hz;
  // Far from every possible value: the samples were not taken together (a stall between the reads).
  return Math.abs(best - raw) / best < 0.25 ? best : undefined;
}

/** Now in each unit a lifetime may be in. */
export interface ClockNow {
  /** Seconds of CLOCK_MONOTONIC. */
  ktime: number;
  /** jiffies >> 8; NaN when /proc/schedstat has no timestamp. */
  jiffies: number;
}

/** How far ahead of now a live entry's lifetime may lie, in seconds (the longest of Cilium's timeouts, 6 h). */
const MAX_AHEAD_S = 6 * 3600 + 60;

/**
 * The unit the lifetimes are in: the one under which most of them lie between now (minus a little: an
 * entry may have just expired) and the longest timeout ahead. The two units are apart by about 2^24
 * (64-bit jiffies start near 2^32, and 2^32 >> 8 = 2^24), so they never look alike in practice.
 */
export function detectClock(
  lifetimes: Uint32Array,
  now: ClockNow,
  hz: number | undefined,
): 'ktime' | 'jiffies' | undefined {
  let ktime = 0;
  let jiffies = 0;
  const jifAhead = hz ? (MAX_AHEAD_S * hz) >> MONO_SCALER : 0;
  for (const l of lifetimes) {
    if (l >= now.ktime - 600 && l <= now.ktime + MAX_AHEAD_S) ktime++;
    if (hz && !Number.isNaN(now.jiffies) && l >= now.jiffies - 600 && l <= now.jiffies + jifAhead) jiffies++;
  }
  if (ktime === 0 && jiffies === 0) return undefined;
  return ktime >= jiffies ? 'ktime' : 'jiffies';
}

/** Seconds from now until `lifetime` (negative: passed), in the given unit. */
export function secondsLeft(lifetime: number, unit: 'ktime' | 'jiffies', now: ClockNow, hz: number): number {
  return unit === 'ktime' ? lifetime - now.ktime : ((lifetime - now.jiffies) * 2 ** MONO_SCALER) / hz;
}
