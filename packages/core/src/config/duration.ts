import { z } from 'zod';
import { parseCidr } from '../batch/cidr.js';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
// µ written as \u00b5: a non-ASCII character in a regular expression survives bundling and would make V8 keep the
// whole chunk that holds it as two-byte text.
const PART = /(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/y;

/**
 * Parses a Go-style duration ("250ms", "5s", "1m30s", "1.5h") into milliseconds; null when malformed.
 * A bare number is not accepted: "5" could mean seconds or milliseconds, and guessing loses data.
 */
export function parseDuration(text: string): number | null {
  const s = text.trim();
  if (s === '0') return 0;
  if (s === '') return null;
  let ms = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const start = PART.lastIndex;
    const m = PART.exec(s);
    if (!m || m.index !== start) return null;
    ms += Number(m[1]) * UNIT_MS[m[2]];
  }
  return ms;
}

/** Formats milliseconds the way users write them ("5s", "1m30s", "250ms"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000 || ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}

/**
 * The longest duration any setting accepts: 24 days. Node's timers cannot wait longer than 2^31−1 ms
 * (about 24.8 days) and fire after 1 ms when asked to (https://nodejs.org/api/timers.html#settimeoutcallback-delay-args),
 * so a longer setting would silently mean "at once".
 */
export const MAX_DURATION_MS = 24 * 24 * 3_600_000;

/**
 * A config field holding a duration, written "5s" in YAML, parsed to milliseconds; `min` and `max` (ms)
 * bound it, `max` at most MAX_DURATION_MS. The bounds are carried into the generated reference.
 */
export function duration(opts: { min?: number; max?: number } = {}) {
  const max = Math.min(opts.max ?? MAX_DURATION_MS, MAX_DURATION_MS);
  const min = opts.min ?? 0;
  return z
    .string({ error: 'expected a duration such as 500ms, 5s or 1m30s' })
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === null) {
        ctx.addIssue({
          code: 'custom',
          message: `"${text}" is not a duration; expected e.g. 500ms, 5s or 1m30s`,
        });
        return z.NEVER;
      }
      if (ms < min) {
        ctx.addIssue({
          code: 'custom',
          message: `"${text}" is too short; the minimum is ${formatDuration(min)}`,
        });
        return z.NEVER;
      }
      if (ms > max) {
        ctx.addIssue({
          code: 'custom',
          message:
            max === MAX_DURATION_MS
              ? `"${text}" is too long; the maximum is ${formatDuration(max)} (timers cannot wait longer)`
              : `"${text}" is too long; the maximum is ${formatDuration(max)}`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .meta({ format: 'duration', durationMin: formatDuration(min), durationMax: formatDuration(max) });
}

/** A config value that must be an IP address or CIDR (IPv4 or IPv6); the message says what is wrong. */
export function cidr() {
  return z.string().superRefine((text, ctx) => {
    const parsed = parseCidr(text);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
  });
}
