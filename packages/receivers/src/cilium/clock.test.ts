import { describe, expect, it } from 'vitest';
import {
  type ClockNow,
  detectClock,
  MONO_SCALER,
  measureHz,
  schedstatJiffies,
  secondsLeft,
  timerListJiffies,
} from './clock.js';
import { initialJiffies, schedstat } from './testdata/fake-kernel.js';

/** Two (jiffies, ns) samples `ms` apart on a kernel ticking at `hz`, the second `jitter` jiffies off. */
function samples(hz: number, ms: number, jitter = 0) {
  const j0 = initialJiffies(hz) + 86_400 * hz;
  const ns0 = 86_400e9 + 123_456;
  return [
    { jiffies: j0, ns: ns0 },
    { jiffies: j0 + Math.round((hz * ms) / 1000) + jitter, ns: ns0 + ms * 1e6 },
  ] as const;
}

describe('timerListJiffies (kernels without /proc/schedstat)', () => {
  it('reads the first jiffies: line of /proc/timer_list', () => {
    const text =
      'Timer List Version: v0.10\nnow at 31072334158993 nsecs\n\ncpu: 0\n clock 0:\njiffies: 4304069857\n\ncpu: 1\njiffies: 4304069858\n';
    expect(timerListJiffies(text)).toBe(4_304_069_857);
    expect(timerListJiffies('now at 1 nsecs\n')).toBeUndefined();
    expect(timerListJiffies(undefined)).toBeUndefined();
  });
});

describe('schedstatJiffies', () => {
  it("reads the jiffies of /proc/schedstat's timestamp line", () => {
    expect(schedstatJiffies(schedstat(4_295_327_421))).toBe(4_295_327_421);
  });

  it('undefined for a file that cannot be read or has no timestamp line', () => {
    expect(schedstatJiffies(undefined)).toBeUndefined();
    expect(schedstatJiffies('')).toBeUndefined();
    expect(schedstatJiffies(schedstat(1).replace(/^timestamp .*$/m, ''))).toBeUndefined();
    expect(schedstatJiffies('version 15\ntimestamp \ncpu0 0 0 1')).toBeUndefined();
  });
});

describe('measureHz', () => {
  it.each([100, 250, 300, 1000])('%i Hz from samples 100 ms apart, give or take a jiffy', (hz) => {
    for (const jitter of [-1, 0, 1]) {
      const [a, b] = samples(hz, 100, jitter);
      expect(measureHz(a, b), `jitter ${jitter}`).toBe(hz);
    }
  });

  it('samples further apart snap as well (300 Hz over 2 s, 250 Hz over 20 ms)', () => {
    expect(measureHz(...samples(300, 2000, 3))).toBe(300);
    expect(measureHz(...samples(250, 20))).toBe(250);
  });

  it('unusable samples: too close, out of order, jiffies standing still or going back', () => {
    const [a, b] = samples(250, 100);
    expect(measureHz(a, a)).toBeUndefined();
    expect(measureHz(b, a)).toBeUndefined();
    expect(measureHz(a, { jiffies: b.jiffies, ns: a.ns + 5e6 })).toBeUndefined();
    expect(measureHz(a, { jiffies: a.jiffies, ns: b.ns })).toBeUndefined();
    expect(measureHz(a, { jiffies: a.jiffies - 3, ns: b.ns })).toBeUndefined();
  });

  it('far from every possible HZ (the samples were not taken together: a stall between the reads): undefined', () => {
    const [a] = samples(250, 100);
    // 60 jiffies in 100 ms: 600 Hz.
    expect(measureHz(a, { jiffies: a.jiffies + 60, ns: a.ns + 100e6 })).toBeUndefined();
    // 17.5 jiffies in 100 ms: halfway between 100 and 250.
    expect(measureHz(a, { jiffies: a.jiffies + 35, ns: a.ns + 200e6 })).toBeUndefined();
    // Within a quarter of 1000: 1200 Hz still reads as 1000.
    expect(measureHz(a, { jiffies: a.jiffies + 120, ns: a.ns + 100e6 })).toBe(1000);
  });
});

describe('detectClock', () => {
  // Ten days after boot on a 250 Hz kernel.
  const hz = 250;
  const jiffies = initialJiffies(hz) + 10 * 86_400 * hz;
  const now: ClockNow = { ktime: 10 * 86_400, jiffies: Math.floor(jiffies / 2 ** MONO_SCALER) };
  const ktimeIn = (s: number) => now.ktime + s;
  const jiffiesIn = (s: number) => now.jiffies + Math.floor((s * hz) / 2 ** MONO_SCALER);
  /** Cilium's timeouts: TCP established (6 h, 8000 s in newer releases), SYN, any (60 s), close (10 s). */
  const TIMEOUTS = [21_600, 8000, 60, 60, 10, 3600];

  it('the two units lie about 2^24 apart, as Cilium’s jiffies >> 8 start near 2^32 >> 8', () => {
    expect(now.jiffies - now.ktime).toBeGreaterThan(2 ** 24 - 2 ** 20);
  });

  it('ktime: lifetimes now + a timeout in seconds of the monotonic clock, recently expired ones included', () => {
    const lifetimes = Uint32Array.from([...TIMEOUTS.map(ktimeIn), ktimeIn(-30)]);
    expect(detectClock(lifetimes, now, hz)).toBe('ktime');
    // HZ unknown or no jiffies to compare with: ktime is still recognised.
    expect(detectClock(lifetimes, now, undefined)).toBe('ktime');
    expect(detectClock(lifetimes, { ...now, jiffies: Number.NaN }, hz)).toBe('ktime');
  });

  it('jiffies: lifetimes now + (timeout × HZ) >> 8, in jiffies >> 8', () => {
    const lifetimes = Uint32Array.from([...TIMEOUTS.map(jiffiesIn), jiffiesIn(-30)]);
    expect(detectClock(lifetimes, now, hz)).toBe('jiffies');
    // At 1000 Hz the same timeouts reach further ahead.
    const at1000 = {
      ktime: now.ktime,
      jiffies: Math.floor((initialJiffies(1000) + 10 * 86_400 * 1000) / 256),
    };
    const far = Uint32Array.from(TIMEOUTS.map((s) => at1000.jiffies + Math.floor((s * 1000) / 256)));
    expect(detectClock(far, at1000, 1000)).toBe('jiffies');
  });

  it('entries that all expired a moment ago (Cilium’s GC has not run yet) still tell their unit', () => {
    expect(detectClock(Uint32Array.from([ktimeIn(-1), ktimeIn(-30), ktimeIn(-500)]), now, hz)).toBe('ktime');
    expect(detectClock(Uint32Array.from([jiffiesIn(-1), jiffiesIn(-30), jiffiesIn(-500)]), now, hz)).toBe(
      'jiffies',
    );
  });

  it('most lifetimes decide; a tie goes to ktime, Cilium’s default', () => {
    expect(detectClock(Uint32Array.from([ktimeIn(60), jiffiesIn(60), jiffiesIn(10)]), now, hz)).toBe(
      'jiffies',
    );
    expect(detectClock(Uint32Array.from([ktimeIn(60), ktimeIn(10), jiffiesIn(60)]), now, hz)).toBe('ktime');
    expect(detectClock(Uint32Array.from([ktimeIn(60), jiffiesIn(60)]), now, hz)).toBe('ktime');
  });

  it('undecidable: no lifetimes, lifetimes near neither now, jiffies lifetimes while HZ or the jiffies are unknown', () => {
    expect(detectClock(new Uint32Array(0), now, hz)).toBeUndefined();
    // Long expired (Cilium's GC has not run for hours), or beyond any timeout.
    const neither = Uint32Array.from([
      0,
      ktimeIn(-7200),
      ktimeIn(30 * 86_400),
      jiffiesIn(-7200),
      2 ** 32 - 1,
    ]);
    expect(detectClock(neither, now, hz)).toBeUndefined();
    const jif = Uint32Array.from(TIMEOUTS.map(jiffiesIn));
    expect(detectClock(jif, now, undefined)).toBeUndefined();
    expect(detectClock(jif, { ...now, jiffies: Number.NaN }, hz)).toBeUndefined();
  });
});

describe('secondsLeft', () => {
  const now: ClockNow = { ktime: 1000, jiffies: 16_800_000 };

  it('ktime: the difference in seconds; jiffies: (difference << 8) / HZ; negative once passed', () => {
    expect(secondsLeft(1060, 'ktime', now, 250)).toBe(60);
    expect(secondsLeft(990, 'ktime', now, 250)).toBe(-10);
    // 60 s at 250 Hz is 15000 jiffies, 58.59 units of 256.
    expect(secondsLeft(now.jiffies + 58, 'jiffies', now, 250)).toBeCloseTo(59.392, 3);
    expect(secondsLeft(now.jiffies - 1, 'jiffies', now, 1000)).toBeCloseTo(-0.256, 6);
  });
});
