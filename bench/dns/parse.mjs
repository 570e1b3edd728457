// DNS message parsing speed on one core: the dns receiver's parser (packages/receivers/src/dns/parse.ts,
// built) against dns-packet's decode, over the same corpus of typical resolver responses — A and AAAA
// answers, CNAME chains to CDN names, NXDOMAIN and NODATA with the zone's SOA, EDNS OPT on two in three,
// 60–500 bytes — once name-compressed as real servers write them and once uncompressed as dns-packet
// writes them. Each parser gets a warm-up, then ROUNDS timed rounds; the table shows the median.
// A second table times our parser on messages crafted to make name decoding work hard (testdata/crafted.ts:
// chains of pointers to pointers, runs of labels entered at ever earlier offsets, CNAME chains written
// last link first), at the default capture_bytes (1500) and the largest (4096), with the work it counts
// (nameSteps) beside the time.
//
//   npx tsc -b && taskset -c 0 .tools/bin/node bench/dns/parse.mjs [--json FILE]
//
// MESSAGES=2000 ROUNDS=7 ROUND_MS=1000 by default. The two parsers do not give the same thing: ours fills a
// reusable DnsMessage with what a lookup needs (question, response code, A/AAAA/CNAME answers of class IN,
// canonical name); dns-packet builds an object per record with every field of every section.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
// A namespace: nameSteps is read only when the build has it, so this runs against an older build too.
import * as parser from '../../packages/receivers/dist/dns/parse.js';
// The message builders the parser's tests use (plain erasable TypeScript, which node runs as is).
import { cnameChain, labelRun, pointerChain } from '../../packages/receivers/src/dns/testdata/crafted.ts';
import { encode, typicalMessage } from '../../packages/receivers/src/dns/testdata/wire.ts';
import { rng } from '../common.mjs';

const MESSAGES = Number(process.env.MESSAGES ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const ROUND_MS = Number(process.env.ROUND_MS ?? 1000);
const jsonAt = process.argv.indexOf('--json');
const jsonFile = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;
if (jsonAt >= 0 && !jsonFile) throw new Error('--json needs a file name');

/** Responses only (a query has no answers to read), 60–500 bytes. */
function corpus(compress) {
  const next = rng(0x16d5);
  const out = [];
  const kinds = { answers: 0, cname: 0, nxdomain: 0, nodata: 0 };
  while (out.length < MESSAGES) {
    const m = typicalMessage(next);
    if (!(m.flags & 0x8000)) continue;
    const bytes = Buffer.from(encode(m, compress));
    if (bytes.length < 60 || bytes.length > 500) continue;
    const answers = m.answers ?? [];
    if ((m.flags & 0xf) === 3) kinds.nxdomain++;
    else if (!answers.some((a) => a.type === 1 || a.type === 28)) kinds.nodata++;
    else if (answers.some((a) => a.type === 5)) kinds.cname++;
    else kinds.answers++;
    out.push(bytes);
  }
  return { messages: out, kinds };
}

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/** Messages per second of `parse` over `messages`: a warm-up round, then ROUNDS rounds of ~ROUND_MS. */
function measure(messages, parse) {
  const round = () => {
    let n = 0;
    const start = performance.now();
    let now = start;
    while (now - start < ROUND_MS) {
      for (let i = 0; i < messages.length; i++) parse(messages[i]);
      n += messages.length;
      now = performance.now();
    }
    return n / ((now - start) / 1000);
  };
  round();
  return Array.from({ length: ROUNDS }, round);
}

const { DnsMessage, parseDns } = parser;
const out = new DnsMessage();
const ours = (b) => {
  if (parseDns(b, 0, b.length, out) !== null) throw new Error(`rejected: ${b.toString('hex')}`);
};
const theirs = (b) => dnsPacket.decode(b);

const results = [];
let sizes;
let mix;
for (const compress of [true, false]) {
  const { messages, kinds } = corpus(compress);
  const lengths = messages.map((m) => m.length);
  const bytes = lengths.reduce((a, b) => a + b, 0);
  if (compress) {
    mix = kinds;
    sizes = { min: Math.min(...lengths), median: median(lengths), max: Math.max(...lengths) };
  }
  for (const [parser, parse] of [
    ['netmon parseDns', ours],
    ['dns-packet decode', theirs],
  ]) {
    for (const m of messages) parse(m);
    const rates = measure(messages, parse);
    const rate = median(rates);
    results.push({
      parser,
      corpus: compress ? 'compressed' : 'uncompressed',
      messages_per_s: Math.round(rate),
      ns_per_message: Number((1e9 / rate).toFixed(1)),
      mib_per_s: Number(((rate * bytes) / messages.length / 2 ** 20).toFixed(1)),
      mean_bytes: Number((bytes / messages.length).toFixed(1)),
      rounds: rates.map(Math.round),
    });
  }
}

// Crafted messages: one message parsed over and over, so each round is that message's cost alone.
const crafted = [];
for (const size of [1500, 4096]) {
  for (const [kind, c] of [
    ['pointer chain', pointerChain(size, size === 1500 ? 400 : 1400)],
    ['label run, descending', labelRun(size, true)],
    ['CNAME chain, reversed', cnameChain(size)],
  ]) {
    const bytes = Buffer.from(c.bytes);
    ours(bytes);
    const steps = parser.nameSteps?.() ?? null;
    const rate = median(measure([bytes], ours));
    crafted.push({
      kind,
      bytes: bytes.length,
      answers: c.answers,
      ns_per_message: Number((1e9 / rate).toFixed(1)),
      ns_per_byte: Number((1e9 / rate / bytes.length).toFixed(2)),
      name_steps: steps,
    });
  }
}
const typicalRow = results.find((r) => r.parser === 'netmon parseDns' && r.corpus === 'compressed');
const typicalPerByte = typicalRow.ns_per_message / typicalRow.mean_bytes;

const cpus = os.cpus();
console.log(
  `${MESSAGES} responses, ${sizes.min}–${sizes.max} bytes (median ${sizes.median} compressed): ` +
    `${mix.answers} A/AAAA, ${mix.cname} behind CNAMEs, ${mix.nxdomain} NXDOMAIN, ${mix.nodata} NODATA; ` +
    `median of ${ROUNDS} rounds of ${ROUND_MS} ms after a warm-up\n`,
);
const header = ['parser', 'corpus', 'messages/s', 'ns/message', 'MiB/s', 'vs dns-packet'];
const rows = results.map((r) => {
  const ref = results.find((x) => x.corpus === r.corpus && x.parser === 'dns-packet decode');
  return [
    r.parser,
    r.corpus,
    r.messages_per_s.toLocaleString('en-US'),
    r.ns_per_message.toFixed(0),
    r.mib_per_s.toFixed(1),
    `${(r.messages_per_s / ref.messages_per_s).toFixed(2)}x`,
  ];
});
const cells = [header, ...rows];
const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
const line = (r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));

console.log(
  `\nnetmon parseDns on crafted messages (typical, compressed: ${typicalPerByte.toFixed(2)} ns/byte)\n`,
);
const cHeader = ['message', 'bytes', 'answers', 'ns/message', 'ns/byte', 'vs typical/byte', 'name steps'];
const cRows = crafted.map((c) => [
  c.kind,
  String(c.bytes),
  String(c.answers),
  c.ns_per_message.toFixed(0),
  c.ns_per_byte.toFixed(2),
  `${(c.ns_per_byte / typicalPerByte).toFixed(1)}x`,
  c.name_steps === null ? '-' : String(c.name_steps),
]);
const cWidths = cHeader.map((_, i) => Math.max(...[cHeader, ...cRows].map((r) => r[i].length)));
const cLine = (r) => r.map((c, i) => (i === 0 ? c.padEnd(cWidths[i]) : c.padStart(cWidths[i]))).join('  ');
console.log(cLine(cHeader));
console.log(cWidths.map((w) => '-'.repeat(w)).join('  '));
for (const r of cRows) console.log(cLine(r));
console.log(
  `\nmachine: ${cpus.length} × ${cpus[0]?.model ?? 'unknown'}, node ${process.version}, load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);

if (jsonFile) {
  writeFileSync(
    jsonFile,
    `${JSON.stringify(
      {
        bench: 'dns-parse',
        machine: {
          cpus: cpus.length,
          cpu_model: cpus[0]?.model ?? 'unknown',
          node: process.version,
          load_average: os.loadavg().map((x) => Number(x.toFixed(2))),
          date: new Date().toISOString(),
        },
        corpus: { messages: MESSAGES, bytes: sizes, mix },
        rounds: ROUNDS,
        round_ms: ROUND_MS,
        results,
        crafted,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`JSON: ${jsonFile}`);
}
