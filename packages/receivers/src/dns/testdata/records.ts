// Test helper: the DNS tracer's raw records, byte for byte as dns.bpf.c writes them into the ring buffer
// (struct dns_event in native/bpf/dns.h: a 64-byte header in host byte order — little-endian on every
// architecture the agent ships for — then the copied payload), and the DNS messages inside them, encoded
// by dns-packet, an implementation independent of the parser under test.
import { parseIp } from '@netmon/core';
import { DNS_EVENT } from '@netmon/native';
import dnsPacket from 'dns-packet';

export const UDP = 17;
export const TCP = 6;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export interface RecordInit {
  /** bpf_ktime_get_ns() of the packet: CLOCK_MONOTONIC ns (rounded to whole ns). */
  ktimeNs: number;
  /** cgroup v2 id of the local socket; default 4242. */
  cgroupId?: number;
  /** The local socket's address (the client's) and the server's; IPv6 text makes a family-6 record. */
  local: string;
  remote: string;
  localPort: number;
  /** Default 53. */
  remotePort?: number;
  /** Default UDP. */
  protocol?: number;
  /** true: leaving the local socket (the tracer's egress program), false: arriving at it. */
  egress: boolean;
  tcpFlags?: number;
  /**
   * Sequence number of the payload's first byte (TCP); of a SYN or SYN-ACK, the packet's own (its ISN: the
   * stream's first byte is ISN + 1).
   */
  tcpSeq?: number;
  /** The transport payload as it was on the wire. */
  payload: Uint8Array;
  /** Payload bytes in the packet; default payload.length. */
  payloadLen?: number;
  /** Bytes copied after the header (the tracer's capture_bytes cut); default all of `payload`. */
  captured?: number;
}

/** One record: the header, then the first `captured` bytes of the payload. */
export function record(r: RecordInit): Uint8Array {
  const captured = r.captured ?? r.payload.length;
  if (captured > r.payload.length) throw new Error('captured past the payload');
  const out = new Uint8Array(DNS_EVENT.size + captured);
  const view = new DataView(out.buffer);
  view.setBigUint64(DNS_EVENT.ktime, BigInt(Math.round(r.ktimeNs)), true);
  view.setBigUint64(DNS_EVENT.cgroup, BigInt(r.cgroupId ?? 4242), true);
  const family = parseIp(r.local, out, DNS_EVENT.local);
  if (family === 0 || parseIp(r.remote, out, DNS_EVENT.remote) !== family) {
    throw new Error(`not one family: ${r.local}, ${r.remote}`);
  }
  view.setUint16(DNS_EVENT.localPort, r.localPort, true);
  view.setUint16(DNS_EVENT.remotePort, r.remotePort ?? 53, true);
  out[DNS_EVENT.family] = family;
  out[DNS_EVENT.protocol] = r.protocol ?? UDP;
  out[DNS_EVENT.egress] = r.egress ? 1 : 0;
  out[DNS_EVENT.tcpFlags] = r.tcpFlags ?? 0;
  view.setUint32(DNS_EVENT.tcpSeq, (r.tcpSeq ?? 0) >>> 0, true);
  view.setUint16(DNS_EVENT.payloadLen, r.payloadLen ?? r.payload.length, true);
  view.setUint16(DNS_EVENT.captured, captured, true);
  out.set(r.payload.subarray(0, captured), DNS_EVENT.size);
  return out;
}

/** Records back to back, as one drain of the ring buffer hands them over. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** How many records `records` holds (walking the headers as the addon does). */
export function recordCount(records: Uint8Array): number {
  const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
  let n = 0;
  for (let o = 0; o + DNS_EVENT.size <= records.length; n++) {
    o += DNS_EVENT.size + view.getUint16(o + DNS_EVENT.captured, true);
  }
  return n;
}

// DNS messages.

/** Header flag bits (RFC 1035 §4.1.1). */
export const RD = dnsPacket.RECURSION_DESIRED;
export const RA = dnsPacket.RECURSION_AVAILABLE;
export const TC = dnsPacket.TRUNCATED_RESPONSE;

/** Opcodes (RFC 1035, RFC 1996, RFC 2136). */
export const Opcode = { QUERY: 0, NOTIFY: 4, UPDATE: 5 } as const;

export interface QueryInit {
  id: number;
  name: string;
  /** Default 'A'. */
  type?: 'A' | 'AAAA' | 'MX' | 'TXT' | 'SRV';
  opcode?: number;
  /** Header flags besides opcode; default RD. */
  flags?: number;
}

/** A query as a stub resolver sends it. */
export function query(q: QueryInit): Uint8Array {
  return encode({
    type: 'query',
    id: q.id,
    flags: (q.flags ?? RD) | ((q.opcode ?? 0) << 11),
    questions: [{ name: q.name, type: q.type ?? 'A', class: 'IN' }],
  });
}

export type AnswerRecord =
  | { name: string; type: 'A' | 'AAAA'; ttl: number; ip: string }
  | { name: string; type: 'CNAME'; ttl: number; target: string };

export interface AnswerInit extends QueryInit {
  /** Response code (the header's four bits); default 0, NOERROR. */
  rcode?: number;
  answers?: readonly AnswerRecord[];
  /** Header flags besides opcode and rcode; default RD RA. */
  flags?: number;
}

/** A recursive resolver's answer to `a.name`. */
export function answer(a: AnswerInit): Uint8Array {
  return encode({
    type: 'response',
    id: a.id,
    flags: (a.flags ?? RD | RA) | ((a.opcode ?? 0) << 11) | (a.rcode ?? 0),
    questions: [{ name: a.name, type: a.type ?? 'A', class: 'IN' }],
    answers: (a.answers ?? []).map((r) =>
      r.type === 'CNAME'
        ? { name: r.name, type: 'CNAME' as const, class: 'IN' as const, ttl: r.ttl, data: r.target }
        : { name: r.name, type: r.type, class: 'IN' as const, ttl: r.ttl, data: r.ip },
    ),
  });
}

function encode(packet: dnsPacket.Packet): Uint8Array {
  return new Uint8Array(dnsPacket.encode(packet));
}

/** Messages as a TCP stream carries them: each after its 2-byte length (RFC 1035 §4.2.2). */
export function stream(...messages: readonly Uint8Array[]): Uint8Array {
  return concat(
    ...messages.map((m) => {
      const framed = new Uint8Array(2 + m.length);
      framed[0] = m.length >> 8;
      framed[1] = m.length & 0xff;
      framed.set(m, 2);
      return framed;
    }),
  );
}
