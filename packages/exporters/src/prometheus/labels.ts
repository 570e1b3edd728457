// Label text per series, built once and kept while the series lives: a scrape then writes each sample as
// a few string concatenations instead of escaping and joining a dozen labels again.
import type { SeriesTable } from '../series/series-table.js';
import { escapeLabelValue } from './exposition.js';

/** The labels of the overflow series (the series cap was reached), as the OpenTelemetry SDK names it. */
export const OVERFLOW_LABEL = 'otel_metric_overflow="true"';

export class LabelCache {
  private texts: (string | undefined)[] = [];

  /** `names[l]` is the Prometheus name of label `l` of the table. */
  constructor(
    private readonly table: SeriesTable,
    readonly names: readonly string[],
  ) {}

  /** `a="x",b="y"` for series `s`: empty labels left out; the overflow series gets OVERFLOW_LABEL. */
  get(s: number): string {
    let text = this.texts[s];
    if (text === undefined) {
      text = this.build(s);
      this.texts[s] = text;
    }
    return text;
  }

  /**
   * Keeps the series for which `keep` is true, in the table and here (SeriesTable.retain compacts in
   * order, so the cache compacts the same way). Returns how many went.
   */
  retain(keep: (s: number) => boolean): number {
    const next: (string | undefined)[] = [];
    const removed = this.table.retain((s) => {
      const k = keep(s);
      if (k) next.push(this.texts[s]);
      return k;
    });
    this.texts = next;
    return removed;
  }

  private build(s: number): string {
    const t = this.table;
    if (t.isOverflow(s)) return OVERFLOW_LABEL;
    // join, not +=: a flat string, which every scrape copies as is (a rope would be walked each time).
    const parts: string[] = [];
    for (let l = 0; l < this.names.length; l++) {
      const v = t.label(s, l);
      if (v !== '') parts.push(`${this.names[l]}="${escapeLabelValue(v)}"`);
    }
    return parts.join(',');
  }
}

/** `name{a="x",extra} ` or `name{extra} `: a sample's prefix before its value. */
export function sample(name: string, labels: string, extra = ''): string {
  if (labels === '') return extra === '' ? `${name} ` : `${name}{${extra}} `;
  return extra === '' ? `${name}{${labels}} ` : `${name}{${labels},${extra}} `;
}
