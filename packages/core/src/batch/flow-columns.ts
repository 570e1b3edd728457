// The fixed columns of a FlowBatch, described once. Allocation, growth, `wrap`, copies and `select`, the
// row view and the flow record all walk this table, so a column is added or changed here and nowhere else.
// The loops over it run once per column and batch; the work per row stays a plain typed-array loop.
import type { FLOW_RECORD_FIELDS } from './flow-record.js';

/** The typed arrays a fixed column may be. */
export type FixedArray = Uint8Array | Uint16Array | Uint32Array | Float64Array;

/** How one fixed column is held and shown. */
export interface FlowColumnSpec {
  /** The typed array that holds it. */
  readonly array: new (
    length: number,
  ) => FixedArray;
  /** Values per row: 16 bytes for an address (IPv4 stored IPv4-mapped), 1 otherwise. */
  readonly width: 1 | 16;
  /** The flow record field that carries it; absent for columns no record shows (flags). */
  readonly record?: Exclude<(typeof FLOW_RECORD_FIELDS)[number], 'attributes'>;
  /** Milliseconds since the Unix epoch, which a record writes as RFC 3339 text. */
  readonly time?: true;
  /** An address: the FlowBatch method (per row index) and FlowRow property that give it as text. */
  readonly text?: 'srcIp' | 'dstIp' | 'backendIp';
  /** Meaningful only on rows with FlowFlags.Dnat: elsewhere a record leaves it out, a row view says undefined. */
  readonly dnat?: true;
}

// Declared as the plain array types (any ArrayBuffer behind them): the native addon's arrays are adopted.
const u8: new (length: number) => Uint8Array = Uint8Array;
const u16: new (length: number) => Uint16Array = Uint16Array;
const u32: new (length: number) => Uint32Array = Uint32Array;
const f64: new (length: number) => Float64Array = Float64Array;

export const FLOW_COLUMNS = {
  family: { array: u8, width: 1, record: 'family' },
  /** IANA protocol number. */
  protocol: { array: u8, width: 1, record: 'protocol' },
  /** 16 bytes per row, IPv4 stored IPv4-mapped. */
  srcAddr: { array: u8, width: 16, record: 'src_ip', text: 'srcIp' },
  /** 16 bytes per row, IPv4 stored IPv4-mapped. */
  dstAddr: { array: u8, width: 16, record: 'dst_ip', text: 'dstIp' },
  srcPort: { array: u16, width: 1, record: 'src_port' },
  dstPort: { array: u16, width: 1, record: 'dst_port' },
  /** The destination after DNAT, 16 bytes per row like dstAddr; meaningful only on rows with FlowFlags.Dnat. */
  backendAddr: { array: u8, width: 16, record: 'backend_ip', text: 'backendIp', dnat: true },
  backendPort: { array: u16, width: 1, record: 'backend_port', dnat: true },
  txBytes: { array: f64, width: 1, record: 'tx_bytes' },
  rxBytes: { array: f64, width: 1, record: 'rx_bytes' },
  txPackets: { array: f64, width: 1, record: 'tx_packets' },
  rxPackets: { array: f64, width: 1, record: 'rx_packets' },
  /** FlowFlags bits. */
  flags: { array: u32, width: 1 },
  timeStart: { array: f64, width: 1, record: 'time_start', time: true },
  timeEnd: { array: f64, width: 1, record: 'time_end', time: true },
} as const satisfies Record<string, FlowColumnSpec>;

export type FlowColumnName = keyof typeof FLOW_COLUMNS;

/** The table as a list in its order, each entry with its name: what the per-batch loops walk. */
export const FLOW_COLUMN_LIST: readonly (FlowColumnSpec & { readonly name: FlowColumnName })[] = (
  Object.keys(FLOW_COLUMNS) as FlowColumnName[]
).map((name) => ({ name, ...FLOW_COLUMNS[name] }));

/** The fixed columns as FlowBatch properties: one typed array per column. */
export type FlowColumnArrays = {
  -readonly [K in FlowColumnName]: InstanceType<(typeof FLOW_COLUMNS)[K]['array']>;
};

/** The same, typed loosely enough to be written in a loop over FLOW_COLUMN_LIST. */
export function columnsOf(batch: FlowColumnArrays): Record<FlowColumnName, FixedArray> {
  return batch;
}

type Spec<K extends FlowColumnName> = (typeof FLOW_COLUMNS)[K];

/** What a row view shows of each column: addresses as text under their `text` name, the rest as numbers. */
export type FlowRowValues = {
  readonly [K in FlowColumnName as Spec<K> extends { text: infer T extends string } ? T : K]:
    | (Spec<K> extends { text: string } ? string : number)
    | (Spec<K> extends { dnat: true } ? undefined : never);
};
