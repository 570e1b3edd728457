// A meter for unit tests that reads a component's self-metrics as a collection would, without the SDK.
import type {
  Attributes,
  BatchObservableCallback,
  Histogram,
  Meter,
  Observable,
  ObservableResult,
} from '@opentelemetry/api';

type Kind = 'counter' | 'updown_counter' | 'gauge' | 'histogram';

interface Instrument extends Observable {
  readonly name: string;
  readonly kind: Kind;
}

export interface RecordingMeter {
  readonly meter: Meter;
  /**
   * The value `name` has now: the batch callbacks run as in a collection (undefined once unregistered,
   * or when nothing was observed). With `attributes`, the point whose attributes include them.
   */
  value(name: string, attributes?: Attributes): number | undefined;
  /** The kind the instrument was made as (throws when none was made). */
  kind(name: string): Kind;
  /** Values recorded on the histogram `name`, in order. */
  recorded(name: string): number[];
  /** The names of every instrument made on the meter. */
  names(): string[];
}

/** A Meter recording every instrument made on it and the batch callbacks registered for them. */
export function recordingMeter(): RecordingMeter {
  const instruments = new Map<string, Instrument>();
  const callbacks = new Map<BatchObservableCallback, readonly Observable[]>();
  const records = new Map<string, number[]>();
  const observable =
    (kind: Kind) =>
    (name: string): Observable => {
      const inst = { name, kind, addCallback: () => {}, removeCallback: () => {} } as Instrument;
      instruments.set(name, inst);
      return inst;
    };
  const meter = {
    createObservableCounter: observable('counter'),
    createObservableUpDownCounter: observable('updown_counter'),
    createObservableGauge: observable('gauge'),
    createHistogram: (name: string): Histogram => {
      instruments.set(name, { name, kind: 'histogram' } as Instrument);
      records.set(name, []);
      return { record: (v: number) => records.get(name)?.push(v) } as Histogram;
    },
    addBatchObservableCallback: (cb: BatchObservableCallback, list: Observable[]) => {
      callbacks.set(cb, list);
    },
    removeBatchObservableCallback: (cb: BatchObservableCallback) => {
      callbacks.delete(cb);
    },
  } as unknown as Meter;
  const matches = (have: Attributes | undefined, want: Attributes | undefined) =>
    !want || Object.entries(want).every(([k, v]) => have?.[k] === v);
  return {
    meter,
    value(name, attributes) {
      let value: number | undefined;
      for (const [cb, list] of callbacks) {
        if (!list.some((i) => (i as Instrument).name === name)) continue;
        cb({
          observe: (inst: Observable, v: number, attrs?: Attributes) => {
            if ((inst as Instrument).name === name && matches(attrs, attributes)) value = v;
          },
        } as unknown as Parameters<BatchObservableCallback>[0] & ObservableResult);
      }
      return value;
    },
    kind(name) {
      const inst = instruments.get(name);
      if (!inst) throw new Error(`no instrument ${name}`);
      return inst.kind;
    },
    recorded: (name) => records.get(name) ?? [],
    names: () => [...instruments.keys()],
  };
}
