// dns_cache extension: memory per entry and per name, and how fast it learns answers and looks addresses
// up, on the built packages.
//
//   npx tsc -b && taskset -c 0 .tools/bin/node --expose-gc bench/dns/cache.mjs [--json FILE]
//
// ENTRIES=100000 by default (the default max_entries). Memory: heap, array buffers and RSS after a forced
// GC, before the cache learns anything and once it holds ENTRIES entries, in three shapes: every address
// its own name (ENTRIES names: the worst case, names dominate); ADDRESSES_PER_NAME addresses per name (a
// CDN or a Service's pods: the slots dominate); ENTRIES/2 addresses that a second client resolved to
// another name (an address entry and a client entry each, ENTRIES names). RSS keeps what the heap grew to
// while the lookups were made, so it is an upper bound, not the cache's size. The batches a receiver would hand it are made
// and dropped per chunk, so what stays is the cache's. Speed: answers learned per second into a full cache
// (every answer a new address and name: an eviction each), answers per second it holds already (a refresh
// each), and lookups per second (classify's domainOf with the flow's source as the client) of random
// addresses among those held, and of addresses it does not hold, each the median of ROUNDS rounds. Random
// lookups over the whole table are its slowest case: flows' destinations repeat, and repeated ones stay in
// the CPU's caches.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { DnsBatch, DnsType, parseIp } from '@netmon/core';
import { createDnsCache, dnsCacheConfig } from '@netmon/extensions';
import { gc, report, rng, settings } from '../common.mjs';

const ENTRIES = Number(process.env.ENTRIES ?? 100_000);
const ADDRESSES_PER_NAME = Number(process.env.ADDRESSES_PER_NAME ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
/** Lookups per batch, as a dns receiver hands them over (one per answer, with a CNAME on every other). */
const CHUNK = 1000;
const jsonAt = process.argv.indexOf('--json');
const jsonFile = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;
if (jsonAt >= 0 && !jsonFile) throw new Error('--json needs a file name');
if (typeof globalThis.gc !== 'function') throw new Error('run node with --expose-gc: heap readings need it');

/** Address i of the test range: 10.64.0.0/10 for IPv4, 2001:db8::/32 for every fourth (IPv6). */
const address = (i) =>
  i % 4 === 3
    ? `2001:db8::${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}`
    : `10.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
const client = (i) => `10.1.${(i >> 8) & 255}.${i & 255}`;

/** A lookup as the receiver emits it: question (fresh strings, as a parser makes), CNAME on odd names. */
function lookup(name, ip, from) {
  const question = `svc-${name}.ns-${name % 50}.example.com`;
  const canonical = name % 2 ? `edge-${name}.cdn.example.net` : undefined;
  const type = ip.includes(':') ? DnsType.AAAA : DnsType.A;
  return {
    time: 0,
    clientIp: from,
    question,
    canonical,
    answers: canonical
      ? [
          { name: question, type: DnsType.CNAME, ttl: 300, target: canonical },
          { name: canonical, type, ttl: 60, ip },
        ]
      : [{ name: question, type, ttl: 300, ip }],
  };
}

function memory() {
  gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

function makeCache(config = {}) {
  return createDnsCache(
    settings('extension', 'dns_cache'),
    dnsCacheConfig.parse({ max_entries: ENTRIES, ...config }),
  );
}

/** Memory the cache holds after learning `lookups(i)` for i < n, in chunks dropped as they are learned. */
function memoryOf(label, n, lookups, expect) {
  const before = memory();
  const ext = makeCache();
  for (let start = 0; start < n; start += CHUNK) {
    const chunk = [];
    for (let i = start; i < Math.min(n, start + CHUNK); i++) chunk.push(...lookups(i));
    ext.learn(DnsBatch.from(chunk));
  }
  const after = memory();
  const { cache } = ext;
  if (cache.size !== expect.entries || cache.names.size !== expect.names)
    throw new Error(
      `${label}: ${cache.size} entries, ${cache.names.size} names; expected ${JSON.stringify(expect)}`,
    );
  const d = {
    entries: cache.size,
    client_entries: cache.clients,
    names: cache.names.size,
    heap_bytes: after.heapUsed - before.heapUsed,
    array_buffer_bytes: after.arrayBuffers - before.arrayBuffers,
    rss_bytes: after.rss - before.rss,
    typed_array_bytes: cache.arrayBytes,
    before,
    after,
  };
  d.bytes_per_entry = (d.heap_bytes + d.array_buffer_bytes) / d.entries;
  report(`${label}: heap`, d.heap_bytes / 2 ** 20, 'MiB', `${d.names.toLocaleString('en-US')} names`, 2);
  report(`${label}: typed arrays (slots, index, name counts)`, d.typed_array_bytes / 2 ** 20, 'MiB', '', 2);
  report(`${label}: array buffers (process)`, d.array_buffer_bytes / 2 ** 20, 'MiB', '', 2);
  // RSS keeps what the heap grew to while the batches were made (their garbage included): an upper bound.
  report(`${label}: RSS`, d.rss_bytes / 2 ** 20, 'MiB', 'after GC; the heap does not give back', 2);
  report(
    `${label}: per entry (heap + arrays)`,
    d.bytes_per_entry,
    'B',
    `${d.entries.toLocaleString('en-US')} entries`,
  );
  ext.shutdown();
  return d;
}

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/** Per second of `run` (which does `items` things), the median of ROUNDS rounds after a warm-up. */
function rate(items, run) {
  run();
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = performance.now();
    run();
    rounds.push(items / ((performance.now() - start) / 1000));
  }
  return median(rounds);
}

console.log(
  `dns_cache, ${ENTRIES.toLocaleString('en-US')} entries (max_entries ${ENTRIES.toLocaleString('en-US')}), node ${process.version}\n`,
);

const memoryResults = {
  own_names: memoryOf(
    `${ENTRIES / 1000}k addresses, one name each`,
    ENTRIES,
    (i) => [lookup(i, address(i), client(i % 500))],
    {
      entries: ENTRIES,
      names: ENTRIES,
    },
  ),
  shared_names: memoryOf(
    `${ENTRIES / 1000}k addresses, ${ADDRESSES_PER_NAME} per name`,
    ENTRIES,
    (i) => [lookup(Math.floor(i / ADDRESSES_PER_NAME), address(i), client(i % 500))],
    { entries: ENTRIES, names: Math.ceil(ENTRIES / ADDRESSES_PER_NAME) },
  ),
  two_clients: memoryOf(
    `${ENTRIES / 2000}k addresses, two clients, two names`,
    ENTRIES / 2,
    (i) => [lookup(2 * i, address(i), '10.2.0.1'), lookup(2 * i + 1, address(i), '10.2.0.2')],
    { entries: ENTRIES, names: ENTRIES },
  ),
};
console.log();

// Speed. Batches made before the clock starts: building them is the receiver's work.
const batches = (offset) => {
  const out = [];
  for (let start = 0; start < ENTRIES; start += CHUNK) {
    const chunk = [];
    for (let i = start; i < start + CHUNK; i++)
      chunk.push(lookup(offset + i, address(offset + i), client(i % 500)));
    out.push(DnsBatch.from(chunk).seal());
  }
  return out;
};
const speed = {};
{
  // Room for the client entries made below, so that none of the addresses looked up is evicted.
  const ext = makeCache({ max_entries: ENTRIES + 2 * CHUNK });
  const first = batches(0);
  const second = batches(ENTRIES);
  let turn = 0;
  // Full from the first round on: each round's answers are new addresses, each evicting the oldest.
  speed.learn_new_per_s = rate(ENTRIES, () => {
    for (const b of turn++ % 2 ? second : first) ext.learn(b);
  });
  report('learn, new addresses and names (an eviction each)', speed.learn_new_per_s / 1e6, 'M answers/s');
  const held = turn % 2 ? first : second; // the batches learned last: all of their addresses are held
  // The steady state: answers the cache holds already (the same client asking again), each a refresh.
  speed.learn_held_per_s = rate(ENTRIES, () => {
    for (const b of held) ext.learn(b);
  });
  report('learn, answers held already (a refresh each)', speed.learn_held_per_s / 1e6, 'M answers/s');

  // Flow-like columns: 16-byte destination and source per row, as a FlowBatch holds them.
  const next = rng(0xd15c);
  const rows = 100_000;
  const dst = new Uint8Array(16 * rows);
  const src = new Uint8Array(16 * rows);
  const missing = new Uint8Array(16 * rows);
  for (let r = 0; r < rows; r++) {
    const i = next() % ENTRIES;
    const b = held[Math.floor(i / CHUNK)];
    // The lookup's address answer is its last.
    const k = b.answerStart[i % CHUNK] + b.answerCount[i % CHUNK] - 1;
    dst.set(b.answerAddr.subarray(16 * k, 16 * k + 16), 16 * r);
    parseIp(client(r % 500), src, 16 * r);
    parseIp(`192.0.${(r >> 8) & 255}.${r & 255}`, missing, 16 * r);
  }
  // 1000 addresses a second client resolved to another name: lookups try the client entries there, and
  // wherever the client filter (a bit per address hash) says one may be.
  const own = [];
  for (let i = 0; i < CHUNK; i++) {
    const j = (turn % 2 ? 0 : ENTRIES) + i * 7;
    own.push(lookup(10 * ENTRIES + i, address(j), client(i % 500)));
  }
  ext.learn(DnsBatch.from(own));
  if (ext.cache.clients === 0) throw new Error('no client entries: the lookups would not try them');
  let found = 0;
  speed.lookup_hit_per_s = rate(rows, () => {
    found = 0;
    for (let r = 0; r < rows; r++) if (ext.domainOf(dst, 16 * r, src, 16 * r) !== undefined) found++;
  });
  if (found !== rows) throw new Error(`${rows - found} of ${rows} lookups missed an address the cache holds`);
  report(
    'lookup, hit (with the client)',
    speed.lookup_hit_per_s / 1e6,
    'M lookups/s',
    `${(1e9 / speed.lookup_hit_per_s).toFixed(0)} ns each`,
  );
  speed.lookup_miss_per_s = rate(rows, () => {
    for (let r = 0; r < rows; r++) ext.domainOf(missing, 16 * r, src, 16 * r);
  });
  report(
    'lookup, miss (with the client)',
    speed.lookup_miss_per_s / 1e6,
    'M lookups/s',
    `${(1e9 / speed.lookup_miss_per_s).toFixed(0)} ns each`,
  );
  ext.shutdown();
}

if (jsonFile) {
  writeFileSync(
    jsonFile,
    `${JSON.stringify(
      {
        bench: 'dns/cache',
        node: process.version,
        cpu: os.cpus()[0]?.model,
        entries: ENTRIES,
        addresses_per_name: ADDRESSES_PER_NAME,
        rounds: ROUNDS,
        memory: memoryResults,
        speed,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`JSON: ${jsonFile}`);
}
