// "Did you mean …?" for names a user typed: component types, config keys, pipeline references, enum values.
// Near misses come in three shapes: the same word with another case or separator (`K8s-Attributes`,
// `k8sattributes`), the word with its kind glued on as other collectors name modules (`prometheusexporter`,
// `otlp_exporter`), and small typos (`read_intervl`).

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
  /** Otherwise the candidates at the smallest edit distance, when it is small for their length. */
  close: string[];
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
  for (const candidate of new Set(candidates)) {
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
  return { exact, close: exact.length > 0 ? [] : close };
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
