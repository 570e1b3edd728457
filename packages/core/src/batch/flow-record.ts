// The flow record: one JSON object per flow per interval, with the field names users see. A stable contract
// shared by the file exporter, the file receiver and the HTTP API, so it lives here, beside FlowBatch.
// Times are kept to the millisecond (a float64 of ms since the epoch): finer digits are truncated, and
// every time is written back in UTC as `new Date(ms).toISOString()` prints it.
import { type AttributeValue, type FlowBatch, FlowFlags, type FlowInit } from './flow-batch.js';
import { FLOW_COLUMN_LIST, type FlowColumnName } from './flow-columns.js';
import { formatIp, parseIp } from './ip.js';

export const FLOW_RECORD_FIELDS = [
  'time_start',
  'time_end',
  'family',
  'protocol',
  'src_ip',
  'src_port',
  'dst_ip',
  'dst_port',
  'backend_ip',
  'backend_port',
  'tx_bytes',
  'rx_bytes',
  'tx_packets',
  'rx_packets',
  'attributes',
] as const;

const KNOWN = new Set<string>(FLOW_RECORD_FIELDS);

/**
 * The attribute a record keeps the receiver's orientation flags in: true when it knew which side opened
 * the connection (src is that side), false when it knew only the local and remote ends, absent when
 * neither. The decoder turns it back into FlowFlags, so a replay orients flows as the receiver did.
 */
export const INITIATOR_KNOWN_ATTRIBUTE = 'flow.initiator_known';

const TIME = 0;
const ADDRESS = 1;
const NUMBER = 2;

/** A record field the fixed columns fill, with the text that opens it (`,"src_port":`). */
interface ColumnField {
  readonly column: FlowColumnName;
  readonly prefix: string;
  readonly kind: typeof TIME | typeof ADDRESS | typeof NUMBER;
  /** Written only on rows with FlowFlags.Dnat. */
  readonly dnat: boolean;
}

// The record's fields in record order, each found in the column table: the table says which column fills
// which field and how, FLOW_RECORD_FIELDS says where it stands. `attributes` comes last, from the attributes.
const COLUMN_FIELDS: readonly ColumnField[] = FLOW_RECORD_FIELDS.filter((f) => f !== 'attributes').map(
  (field, k) => {
    const c = FLOW_COLUMN_LIST.find((col) => col.record === field);
    if (c === undefined) throw new Error(`flow record field "${field}" has no FlowBatch column`);
    return {
      column: c.name,
      prefix: `${k === 0 ? '{' : ','}"${field}":`,
      kind: c.time ? TIME : c.text !== undefined ? ADDRESS : NUMBER,
      dnat: c.dnat === true,
    };
  },
);

/** RFC 3339 date-time with an explicit offset; Date.parse alone accepts far more (and local times). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const scratch = new Uint8Array(16);

/**
 * Appends rows [0, batch.length) to `out` as JSON Lines, attribute keys sorted. Strings are escaped once
 * per dictionary entry and timestamps formatted once per distinct value, not once per row.
 *
 * `flow.initiator_known` comes from its column when a processor wrote one (k8s_attributes does), else from
 * the flags the receiver set: without it a pipeline with no such processor (`ebpf → file`) would drop what
 * the receiver knew about orientation, and its replay would lose it.
 */
export function encodeFlowRecords(batch: FlowBatch, out: string[] = []): string[] {
  const keys = batch.attributeKeys();
  if (batch.column(INITIATOR_KNOWN_ATTRIBUTE) === undefined) keys.push(INITIATOR_KNOWN_ATTRIBUTE);
  keys.sort();
  // `undefined` only for the attribute taken from the flags.
  const cols = keys.map((k) => batch.column(k));
  const keyPrefix = keys.map((k) => `${JSON.stringify(k)}:`);
  // A shared dictionary (StringColumn.share) may be far larger than the batch: key the cache by code then.
  const encodedDicts = cols.map((c) =>
    c === undefined || c.kind !== 'string'
      ? null
      : c.dict.length <= 4 * batch.length + 64
        ? new Array<string | undefined>(c.dict.length)
        : new Map<number, string>(),
  );
  const fields = COLUMN_FIELDS;
  const values = fields.map((f) => batch[f.column]);
  // One formatter per time column: start and end differ, and each repeats along the batch.
  const times = fields.map((f) => (f.kind === TIME ? new TimeFormatter() : undefined));
  const { family, flags } = batch;
  for (let i = 0; i < batch.length; i++) {
    let attrs = '';
    for (let k = 0; k < cols.length; k++) {
      const col = cols[k];
      let value: string;
      if (col === undefined) {
        const f = flags[i];
        if ((f & FlowFlags.InitiatorKnown) !== 0) value = 'true';
        else if ((f & FlowFlags.LocalRemote) !== 0) value = 'false';
        else continue;
      } else if (col.kind === 'string') {
        const code = col.codes[i];
        if (code === 0) continue;
        const cache = encodedDicts[k]!;
        if (Array.isArray(cache)) value = cache[code] ??= JSON.stringify(col.dict[code]);
        else {
          let v = cache.get(code);
          if (v === undefined) {
            v = JSON.stringify(col.dict[code]);
            cache.set(code, v);
          }
          value = v;
        }
      } else if (col.kind === 'number') {
        const v = col.values[i];
        if (Number.isNaN(v)) continue;
        value = Number.isFinite(v) ? String(v) : 'null';
      } else {
        const v = col.values[i];
        if (v === 0) continue;
        value = v === 2 ? 'true' : 'false';
      }
      attrs += (attrs === '' ? '' : ',') + keyPrefix[k] + value;
    }
    const translated = (flags[i] & FlowFlags.Dnat) !== 0;
    let line = '';
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k];
      if (f.dnat && !translated) continue;
      const v = values[k];
      if (f.kind === NUMBER) line += f.prefix + v[i];
      else if (f.kind === TIME) line += `${f.prefix}"${times[k]!.format(v[i])}"`;
      else line += `${f.prefix}"${formatIp(v as Uint8Array, 16 * i, family[i])}"`;
    }
    out.push(`${line},"attributes":{${attrs}}}\n`);
  }
  return out;
}

class TimeFormatter {
  private lastMs = Number.NaN;
  private lastText = '';
  format(ms: number): string {
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastText = new Date(ms).toISOString();
    }
    return this.lastText;
  }
}

export type DecodeResult = { ok: true; flow: FlowInit } | { ok: false; error: string };

/**
 * Parses one JSON Lines flow record; the error says which field is wrong and why, in words that never repeat
 * what the line holds: a receiver may be pointed at any file (a mistyped path, /etc/shadow) and its errors go
 * wherever logs go, so a value, or even an unknown key, is referred to by its position in the object.
 */
export function decodeFlowRecord(line: string): DecodeResult {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    // JSON.parse's message quotes the text around the fault.
    return { ok: false, error: 'not JSON' };
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return { ok: false, error: 'not a JSON object' };
  }
  const r = obj as Record<string, unknown>;
  const keys = Object.keys(r);
  for (let i = 0; i < keys.length; i++) {
    if (!KNOWN.has(keys[i])) {
      return { ok: false, error: `unknown field: key ${i + 1} of the object is not a flow record field` };
    }
  }
  const time = (key: string): number | string => {
    const v = r[key];
    if (typeof v !== 'string') return `${key}: expected an RFC 3339 time string`;
    const ms = RFC3339.test(v) ? Date.parse(v) : Number.NaN;
    return Number.isNaN(ms) ? `${key}: not an RFC 3339 time such as 2026-01-01T00:00:00.000Z` : ms;
  };
  const uint = (key: string, max: number, required: boolean): number | string => {
    const v = r[key];
    if (v === undefined && !required) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      return `${key}: expected an integer 0..${max}`;
    }
    return v;
  };
  const fields = {
    timeStart: time('time_start'),
    timeEnd: time('time_end'),
    family: uint('family', 6, true),
    protocol: uint('protocol', 255, true),
    srcPort: uint('src_port', 65535, false),
    dstPort: uint('dst_port', 65535, false),
    backendPort: uint('backend_port', 65535, false),
    txBytes: uint('tx_bytes', Number.MAX_SAFE_INTEGER, false),
    rxBytes: uint('rx_bytes', Number.MAX_SAFE_INTEGER, false),
    txPackets: uint('tx_packets', Number.MAX_SAFE_INTEGER, false),
    rxPackets: uint('rx_packets', Number.MAX_SAFE_INTEGER, false),
  };
  for (const v of Object.values(fields)) if (typeof v === 'string') return { ok: false, error: v };
  const f = fields as Record<keyof typeof fields, number>;
  if (f.family !== 4 && f.family !== 6) return { ok: false, error: 'family: expected 4 or 6' };
  if (r.backend_port !== undefined && r.backend_ip === undefined) {
    return { ok: false, error: 'backend_port: given without backend_ip' };
  }
  for (const key of ['src_ip', 'dst_ip', 'backend_ip'] as const) {
    const ip = r[key];
    if (key === 'backend_ip' && ip === undefined) continue;
    if (typeof ip !== 'string') return { ok: false, error: `${key}: expected an IP address string` };
    const family = parseIp(ip, scratch, 0);
    if (family === 0) return { ok: false, error: `${key}: not an IP address` };
    if (f.family === 4 && family === 6)
      return { ok: false, error: `${key}: an IPv6 address in a family 4 record` };
  }
  let attributes: Record<string, AttributeValue> | undefined;
  if (r.attributes !== undefined) {
    if (typeof r.attributes !== 'object' || r.attributes === null || Array.isArray(r.attributes)) {
      return { ok: false, error: 'attributes: expected an object' };
    }
    attributes = Object.create(null) as Record<string, AttributeValue>;
    let i = 0;
    for (const [k, v] of Object.entries(r.attributes)) {
      i++;
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        return { ok: false, error: `attributes: key ${i} holds neither a string, a number nor a boolean` };
      }
      attributes[k] = v;
    }
  }
  return {
    ok: true,
    flow: {
      timeStart: f.timeStart,
      timeEnd: f.timeEnd,
      family: f.family as 4 | 6,
      protocol: f.protocol,
      srcIp: r.src_ip as string,
      srcPort: f.srcPort,
      dstIp: r.dst_ip as string,
      dstPort: f.dstPort,
      ...(r.backend_ip === undefined
        ? {}
        : { backendIp: r.backend_ip as string, backendPort: f.backendPort }),
      txBytes: f.txBytes,
      rxBytes: f.rxBytes,
      txPackets: f.txPackets,
      rxPackets: f.rxPackets,
      // The record keeps what the receiver knew about orientation as an attribute; a replay restores it.
      flags:
        attributes?.[INITIATOR_KNOWN_ATTRIBUTE] === true
          ? FlowFlags.InitiatorKnown
          : attributes?.[INITIATOR_KNOWN_ATTRIBUTE] === false
            ? FlowFlags.LocalRemote
            : 0,
      attributes,
    },
  };
}
