// The dns receiver's whole user-space path on one core: raw tracer records (a UDP query leaving, its
// answer arriving, as dns.bpf.c writes them) → decode, parse, pair, DnsBatch rows — what each DNS packet
// costs the agent after the kernel. The answers are the parser benchmark's typical responses.
//
//   npx tsc -b && taskset -c 0 .tools/bin/node bench/dns/tracker.mjs [--json FILE]
//
// LOOKUPS=2000 (query + answer pairs per drain) ROUNDS=7 ROUND_MS=1000 by default.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { DnsBatch } from '../../packages/core/dist/index.js';
import { DnsTracker } from '../../packages/receivers/dist/dns/tracker.js';
import { concat, record } from '../../packages/receivers/src/dns/testdata/records.ts';
import { encode, typicalMessage } from '../../packages/receivers/src/dns/testdata/wire.ts';
import { rng } from '../common.mjs';

const LOOKUPS = Number(process.env.LOOKUPS ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const ROUND_MS = Number(process.env.ROUND_MS ?? 1000);
const jsonAt = process.argv.indexOf('--json');
const jsonFile = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;

/** One drain's worth of records: LOOKUPS queries and their answers, from as many client ports. */
function drain() {
  const next = rng(0x7ac4);
  const parts = [];
  let bytes = 0;
  for (let i = 0; parts.length < 2 * LOOKUPS; i++) {
    const m = typicalMessage(next);
    if (!(m.flags & 0x8000)) continue;
    const answer = encode({ ...m, id: i & 0xffff }, true);
    const query = encode(
      { ...m, id: i & 0xffff, flags: 0x0100, answers: [], authorities: [], additionals: [] },
      true,
    );
    const common = { local: '10.0.0.2', remote: '10.96.0.10', localPort: 10000 + (i % 50000), cgroupId: 77 };
    parts.push(record({ ...common, ktimeNs: 1e9 + i * 1000, egress: true, payload: query }));
    parts.push(record({ ...common, ktimeNs: 1e9 + i * 1000 + 400_000, egress: false, payload: answer }));
    bytes += query.length + answer.length;
  }
  return { records: concat(...parts), bytes };
}

const { records, bytes } = drain();
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const tracker = new DnsTracker(5e9);
const clock = { monoNs: 2e9, wallMs: Date.now() };
const once = () => {
  const batch = new DnsBatch();
  tracker.add(records, batch, clock);
  return batch.length;
};
if (once() !== LOOKUPS) throw new Error(`expected ${LOOKUPS} lookups`);
for (let i = 0; i < 20; i++) once();
const rates = [];
for (let r = 0; r < ROUNDS; r++) {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ROUND_MS) n += once();
  rates.push((2 * n) / ((performance.now() - start) / 1000));
}
const rate = median(rates);
const result = {
  packets_per_s: Math.round(rate),
  lookups_per_s: Math.round(rate / 2),
  ns_per_packet: Number((1e9 / rate).toFixed(0)),
  mean_payload_bytes: Number((bytes / (2 * LOOKUPS)).toFixed(1)),
  rounds: rates.map(Math.round),
};
const cpus = os.cpus();
console.log(
  `${LOOKUPS} UDP lookups per drain (query + answer records, payload mean ${result.mean_payload_bytes} B); median of ${ROUNDS} rounds of ${ROUND_MS} ms\n`,
);
console.log(
  `records → DnsBatch: ${result.packets_per_s.toLocaleString('en-US')} packets/s (${result.lookups_per_s.toLocaleString('en-US')} lookups/s), ${result.ns_per_packet} ns per packet`,
);
console.log(`\nmachine: ${cpus.length} × ${cpus[0]?.model ?? 'unknown'}, node ${process.version}`);
if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify({ lookups: LOOKUPS, ...result }, null, 2)}\n`);
