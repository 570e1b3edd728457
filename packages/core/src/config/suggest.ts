// "Did you mean …?" for names a user typed: component types, config keys, pipeline references, enum values.
// Near misses come in four shapes: the same word with another case or separator (`K8s-Attributes`,
// `k8sattributes`), the word with its kind glued on as other collectors name modules (`prometheusexporter`,
// `otlp_exporter`), small typos (`read_intervl`), and a shorter name the real one starts with or contains as
// whole words (`retry` → `retry_on_failure`, `max_elapsed` → `max_elapsed_time`), as a name that grew does.
import type { ComponentKind } from '../component.js';

/** Lower case, separators dropped: `K8s-Attributes`, `k8s.attributes` and `k8sattributes` compare equal. */
export const squash = (s: string): string => s.toLowerCase().replace(/[\s_.-]+/g, '');

/** Words that users add to a component type: `prometheusexporter`, `exporter_otlp`, `healthcheckextension`. */
export const KIND_AFFIXES: readonly string[] = [
  'receivers',
  'receiver',
  'processors',
  'processor',
  'exporters',
  'exporter',
  'extensions',
  'extension',
];

export interface Suggestions {
  /** Candidates equal to the input once case, separators (and affixes) are set aside. */
  exact: string[];
  /**
   * Otherwise the candidates at the smallest edit distance, when it is small for their length; failing
   * those, the one candidate that starts with the input or holds it as whole words (see `extending`).
   */
  close: string[];
}

/** The words of a name: `max_elapsed_time`, `max-elapsed-time` and `maxElapsedTime` are max, elapsed, time. */
const words = (s: string): string[] =>
  s
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[\s_.:/-]+/)
    .filter((w) => w !== '');

/**
 * The candidates that `input` is the start of (`retry` → `retry_on_failure`, `maxelapsed` →
 * `max_elapsed_time`) or a run of whole words of (`elapsed_time` → `max_elapsed_time`), for inputs of three
 * letters or more; the input itself is left out. A name that grew keeps its old name inside.
 */
export function extending(input: string, candidates: Iterable<string>): string[] {
  const query = squash(input);
  if (query.length < 3) return [];
  const qw = words(input);
  const found: string[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate === input) continue;
    const c = squash(candidate);
    if (c === query) continue;
    const cw = words(candidate);
    const inWords = cw.some((_, i) => qw.length > 0 && qw.every((w, j) => cw[i + j] === w));
    if (c.startsWith(query) || inWords) found.push(candidate);
  }
  return found;
}

/**
 * The candidates the user most likely meant by `input`, best first; empty when none is near. The input itself
 * is never suggested.
 */
export function nearest(
  input: string,
  candidates: Iterable<string>,
  opts: { affixes?: readonly string[] } = {},
): Suggestions {
  const query = squash(input);
  if (query === '') return { exact: [], close: [] };
  const forms = new Set([query]);
  for (const affix of opts.affixes ?? []) {
    if (query.length > affix.length && query.endsWith(affix)) forms.add(query.slice(0, -affix.length));
    if (query.length > affix.length && query.startsWith(affix)) forms.add(query.slice(affix.length));
  }
  const exact: string[] = [];
  let close: string[] = [];
  let best = Number.POSITIVE_INFINITY;
  const pool = new Set(candidates);
  for (const candidate of pool) {
    if (candidate === input) continue;
    const c = squash(candidate);
    if (forms.has(c)) {
      exact.push(candidate);
      continue;
    }
    for (const form of forms) {
      const d = editDistance(form, c);
      // Up to about one edit in three characters (at most 3), and fewer edits than half the shorter word:
      // `pat` → `path`, `reciever` → `receivers`, but not `a` → `ab` or `ttl` → `url`.
      const limit = Math.max(1, Math.min(3, Math.floor(Math.max(form.length, c.length) * 0.3)));
      if (d > limit || d * 2 >= Math.min(form.length, c.length)) continue;
      if (d < best) {
        best = d;
        close = [candidate];
      } else if (d === best && !close.includes(candidate)) {
        close.push(candidate);
      }
    }
  }
  if (exact.length > 0) return { exact, close: [] };
  if (close.length > 0) return { exact, close };
  // Only when one candidate extends the input: `interval` among read_interval and max_interval says nothing.
  // The input as written first: its separators mark the words (`max_elapsed`); then without its affixes.
  const grown = [input, ...forms].map((form) => extending(form, pool)).find((x) => x.length > 0) ?? [];
  return { exact, close: grown.length === 1 ? grown : [] };
}

/** `did you mean a?`, `did you mean a or b?`; '' when there is nothing to suggest. */
export function didYouMean(names: readonly string[]): string {
  if (names.length === 0) return '';
  const shown = names.slice(0, 3);
  const list = shown.length === 1 ? shown[0] : `${shown.slice(0, -1).join(', ')} or ${shown.at(-1)}`;
  return `did you mean ${list}?`;
}

/** The best suggestion for `input` among `candidates` as `did you mean …?`, or ''. */
export function suggest(
  input: string,
  candidates: Iterable<string>,
  opts: { affixes?: readonly string[] } = {},
): string {
  const s = nearest(input, candidates, opts);
  return didYouMean(s.exact.length > 0 ? s.exact : s.close);
}

/**
 * Names that changed with no alias kept, where nothing in the name itself leads to the new one. Each is
 * offered only when the new name exists: a renamed key only where the component's schema has the new path
 * (relative to the object the old key was written in), a renamed type only when that type is registered,
 * so another registry or schema never gets a suggestion that is not there.
 */
export const RENAMED_KEYS: Readonly<Record<string, string>> = {
  // devzero's queue file moved into the Collector's sending_queue (its file_storage plays this part).
  state_dir: 'sending_queue::directory',
};
export const RENAMED_TYPES: Readonly<Partial<Record<ComponentKind, Readonly<Record<string, string>>>>> = {
  // The OpenTelemetry Collector's former name for its debug exporter.
  exporter: { logging: 'debug' },
};

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbours each
 * cost one, so `intervl` → `interval` and `reciever` → `receiver` are one edit apart.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev2 = new Array<number>(b.length + 1).fill(0);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2] + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[b.length];
}
