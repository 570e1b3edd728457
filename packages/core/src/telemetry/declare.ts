// Self-metrics declared, not hand-built: a component's factory declares its metrics (name, kind, unit,
// description, attributes); `observeMetrics` creates the instruments from that declaration and reads them
// in one batch callback per collection; the docs generator writes each README's table from the same
// declaration. So a metric's name and description are written once.
import type { Attributes, BatchObservableCallback, Histogram, Meter, Observable } from '@opentelemetry/api';

/**
 * counter: a monotonic total read at collection (an observable counter). updown_counter: a total that can
 * go down. gauge: a value now. histogram: recorded as events happen (the only synchronous kind).
 */
export type MetricKind = 'counter' | 'updown_counter' | 'gauge' | 'histogram';

export interface MetricDeclaration {
  /** `netmon_…`, lower_snake_case; exporters add suffixes (`_total`) as their format wants. */
  readonly name: string;
  readonly kind: MetricKind;
  /** UCUM, as OpenTelemetry wants: `By`, `s`, `{flow}`. */
  readonly unit?: string;
  readonly description: string;
  /** The attributes on its points, each with what it says. */
  readonly attributes?: Readonly<Record<string, string>>;
  /** Histograms only: bucket boundaries. */
  readonly boundaries?: readonly number[];
}

export type MetricDeclarations = Readonly<Record<string, MetricDeclaration>>;

/** Keeps the keys' literal types, so `observeMetrics` can offer one typed recorder per key. */
export function defineMetrics<const M extends MetricDeclarations>(metrics: M): M {
  return metrics;
}

type HistogramKeys<M extends MetricDeclarations> = {
  [K in keyof M]: M[K]['kind'] extends 'histogram' ? K : never;
}[keyof M];
type ObservedKeys<M extends MetricDeclarations> = Exclude<keyof M, HistogramKeys<M>>;

/** One function per observed metric: call it with the value (and attributes) at collection. */
export type Observations<M extends MetricDeclarations> = {
  readonly [K in ObservedKeys<M>]: (value: number, attributes?: Attributes) => void;
};

export interface ObservedMetrics<M extends MetricDeclarations> {
  /** The histograms of the declaration, to record events on. */
  readonly histograms: { readonly [K in HistogramKeys<M>]: Histogram };
  /** Unregisters the callback (shutdown); the meter keeps the instruments, which then report nothing. */
  close(): void;
}

/**
 * Creates an instrument per declared metric on `meter` and registers `observe` as one batch callback,
 * called at each collection with a recorder per observed metric. Histograms are returned to record on.
 */
export function observeMetrics<const M extends MetricDeclarations>(
  meter: Meter,
  metrics: M,
  observe: (record: Observations<M>) => void,
): ObservedMetrics<M> {
  const observables: Observable[] = [];
  const byKey = new Map<string, Observable>();
  const histograms: Record<string, Histogram> = {};
  for (const [key, m] of Object.entries(metrics)) {
    const options = { description: m.description, unit: m.unit };
    switch (m.kind) {
      case 'histogram':
        histograms[key] = meter.createHistogram(m.name, {
          ...options,
          advice: m.boundaries ? { explicitBucketBoundaries: [...m.boundaries] } : undefined,
        });
        continue;
      case 'counter':
        byKey.set(key, meter.createObservableCounter(m.name, options));
        break;
      case 'updown_counter':
        byKey.set(key, meter.createObservableUpDownCounter(m.name, options));
        break;
      case 'gauge':
        byKey.set(key, meter.createObservableGauge(m.name, options));
        break;
    }
    observables.push(byKey.get(key)!);
  }
  let callback: BatchObservableCallback | undefined;
  if (observables.length > 0) {
    callback = (result) => {
      const record: Record<string, (value: number, attributes?: Attributes) => void> = {};
      for (const [key, inst] of byKey)
        record[key] = (value, attributes) => result.observe(inst, value, attributes);
      observe(record as Observations<M>);
    };
    meter.addBatchObservableCallback(callback, observables);
  }
  return {
    histograms: histograms as ObservedMetrics<M>['histograms'],
    close: () => {
      if (callback) meter.removeBatchObservableCallback(callback, observables);
      callback = undefined;
    },
  };
}
