// The agent's self-metrics (OpenTelemetry instruments read by the agent's MetricReader) in the exposition
// formats, named as the OpenTelemetry ↔ Prometheus compatibility spec says: the unit appended in words
// unless the name already ends with it, `_total` on counters, `{annotations}` dropped.
import { type CollectedMetrics, componentOfScope } from '@netmon/core';
import { DataPointType } from '@opentelemetry/sdk-metrics';
import {
  type Exposition,
  escapeLabelValue,
  formatValue,
  type MetricType,
  sanitizeLabelName,
  sanitizeMetricName,
} from './exposition.js';

/** Units in words, converted to Prometheus' base units (seconds, bytes) with the factor to multiply by. */
const UNITS: Record<string, [word: string, scale: number]> = {
  By: ['bytes', 1],
  KiBy: ['bytes', 1024],
  MiBy: ['bytes', 1024 ** 2],
  GiBy: ['bytes', 1024 ** 3],
  KBy: ['bytes', 1e3],
  MBy: ['bytes', 1e6],
  GBy: ['bytes', 1e9],
  bit: ['bits', 1],
  s: ['seconds', 1],
  ms: ['seconds', 1e-3],
  us: ['seconds', 1e-6],
  ns: ['seconds', 1e-9],
  min: ['seconds', 60],
  h: ['seconds', 3600],
  d: ['seconds', 86_400],
  '%': ['percent', 1],
  Hz: ['hertz', 1],
};

const PER_WORDS: Record<string, string> = { s: 'second', min: 'minute', h: 'hour', d: 'day' };

/**
 * The unit in words for a metric name (`By` → bytes, `ms` → seconds ×0.001, `By/s` → bytes_per_second,
 * `{item}` → none), and the factor that converts values to it: promtool wants base units.
 */
export function unitOf(unit: string, type: MetricType): { suffix: string; scale: number } {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (u === '') return { suffix: '', scale: 1 };
  if (u === '1') return { suffix: type === 'gauge' ? 'ratio' : '', scale: 1 };
  const [main, per] = u.split('/', 2);
  const known = UNITS[main];
  const head = main === '' || main === '1' ? '' : (known?.[0] ?? sanitizeLabelName(main));
  const scale = per === undefined && known ? known[1] : 1;
  if (per === undefined || per === '') return { suffix: head, scale };
  const tail = `per_${PER_WORDS[per] ?? sanitizeLabelName(per)}`;
  return { suffix: head ? `${head}_${tail}` : tail, scale };
}

/** The unit in words for a metric name (see unitOf). */
export function unitSuffix(unit: string, type: MetricType): string {
  return unitOf(unit, type).suffix;
}

/**
 * The Prometheus family name and type of an instrument, and the factor its values are scaled by. For
 * counters the family name is without `_total` (samples add it); a name that already ends with its unit
 * (or `_total`) gets no second one.
 */
export function familyOf(
  name: string,
  unit: string,
  dataPointType: number,
  isMonotonic: boolean | undefined,
): { name: string; type: MetricType; scale: number } | undefined {
  let type: MetricType;
  if (dataPointType === DataPointType.SUM) type = isMonotonic ? 'counter' : 'gauge';
  else if (dataPointType === DataPointType.GAUGE) type = 'gauge';
  else if (dataPointType === DataPointType.HISTOGRAM) type = 'histogram';
  else return undefined; // exponential histograms: none of netmon's instruments is one
  let base = sanitizeMetricName(name);
  if (type === 'counter' && base.endsWith('_total')) base = base.slice(0, -'_total'.length);
  const { suffix, scale } = unitOf(unit, type);
  if (suffix && !base.endsWith(`_${suffix}`)) base = `${base}_${suffix}`;
  return { name: base, type, scale };
}

interface Family {
  type: MetricType;
  help: string;
  text: string;
  seen: Set<string>;
}

interface HistogramValue {
  buckets: { boundaries: number[]; counts: number[] };
  sum?: number;
  count: number;
}

/**
 * Renders the collected self-metrics. Instruments of the same name from several meters (one per
 * component) make one family; each sample gets `component` (and `pipeline`) from its meter's scope unless
 * it has them already. Names in `reserved` (the exporter's own families) and repeated label sets are
 * skipped, so the output always parses.
 */
export function renderSelfMetrics(
  metrics: CollectedMetrics,
  out: Exposition,
  reserved: ReadonlySet<string>,
): void {
  const families = new Map<string, Family>();
  for (const scope of metrics.scopeMetrics) {
    const component = componentOfScope(scope.scope.name);
    for (const m of scope.metrics) {
      const f = familyOf(m.descriptor.name, m.descriptor.unit, m.dataPointType, m.isMonotonic);
      if (!f || reserved.has(f.name) || reserved.has(`${f.name}_total`)) continue;
      let family = families.get(f.name);
      if (!family) {
        family = { type: f.type, help: m.descriptor.description || f.name, text: '', seen: new Set() };
        families.set(f.name, family);
      } else if (family.type !== f.type) {
        continue; // two instruments of one name and different kinds: the first one wins
      }
      for (const p of m.dataPoints) {
        let labels = '';
        const names = new Set<string>();
        for (const [k, v] of Object.entries(p.attributes)) {
          if (v === undefined || v === null || v === '') continue;
          const name = sanitizeLabelName(k);
          if (names.has(name) || name === 'le') continue;
          names.add(name);
          labels += `${labels ? ',' : ''}${name}="${escapeLabelValue(String(v))}"`;
        }
        if (component && !names.has('component')) {
          labels += `${labels ? ',' : ''}component="${escapeLabelValue(component.id)}"`;
        }
        if (component?.pipeline && !names.has('pipeline')) {
          labels += `,pipeline="${escapeLabelValue(component.pipeline)}"`;
        }
        if (family.seen.has(labels)) continue;
        family.seen.add(labels);
        family.text +=
          f.type === 'histogram'
            ? histogramLines(f.name, labels, p.value as HistogramValue, f.scale)
            : `${f.name}${f.type === 'counter' ? '_total' : ''}${labels ? `{${labels}}` : ''} ${formatValue((p.value as number) * f.scale)}\n`;
      }
    }
  }
  for (const [name, family] of families) {
    if (family.text === '') continue;
    out.family(name, family.type, family.help);
    out.write(family.text);
  }
}

function histogramLines(name: string, labels: string, h: HistogramValue, scale: number): string {
  const sep = labels ? `${labels},` : '';
  let text = '';
  let cumulative = 0;
  const { boundaries, counts } = h.buckets;
  for (let i = 0; i < boundaries.length; i++) {
    cumulative += counts[i] ?? 0;
    text += `${name}_bucket{${sep}le="${formatValue(boundaries[i] * scale)}"} ${cumulative}\n`;
  }
  text += `${name}_bucket{${sep}le="+Inf"} ${h.count}\n`;
  const braces = labels ? `{${labels}}` : '';
  if (h.sum !== undefined) text += `${name}_sum${braces} ${formatValue(h.sum * scale)}\n`;
  text += `${name}_count${braces} ${h.count}\n`;
  return text;
}
