// cost processor: rows priced per second on one core, on the built packages.
//   make build && .tools/bin/node bench/cost.mjs
// FLOWS=100000,1000000 ROUNDS=9 by default. The batch carries every traffic class, a handful of regions,
// IPv4 pod sources (with their node, as k8s_attributes leaves them) and public IPv4 destinations; each
// round prices the same batch again (cost.usd is overwritten in place). Prints the median of the rounds, one line per scenario.
import { performance } from 'node:perf_hooks';
import { FlowBatch } from '@netmon/core';
import { costProcessorFactory, TRAFFIC_CLASSES } from '@netmon/processors';
import { report, rng, settings } from './common.mjs';

const SIZES = (process.env.FLOWS ?? '100000,1000000').split(',').map(Number);
const ROUNDS = Number(process.env.ROUNDS ?? 9);

const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'ap-northeast-1', 'sa-east-1'];

/** n rows: classes spread evenly (cross_region with a random region pair), random public IPv4 peers. */
function makeBatch(n, seed) {
  const next = rng(seed);
  const b = new FlowBatch(n, 'delta');
  b.length = n;
  const cls = b.ensureColumn('traffic.class', 'string');
  const src = b.ensureColumn('src.cloud.region', 'string');
  const dst = b.ensureColumn('dst.cloud.region', 'string');
  // Sources are this cluster's pods, as k8s_attributes labels them: the NAT rule asks for the node.
  const srcNode = b.ensureColumn('src.k8s.node.name', 'string');
  const nodeCode = srcNode.code('node-0');
  const classCodes = TRAFFIC_CLASSES.map((c) => cls.code(c));
  const srcCodes = REGIONS.map((r) => src.code(r));
  const dstCodes = REGIONS.map((r) => dst.code(r));
  for (let i = 0; i < n; i++) {
    const o = 16 * i;
    b.family[i] = 4;
    b.protocol[i] = 6;
    b.srcAddr[o + 10] = b.srcAddr[o + 11] = 0xff;
    b.srcAddr[o + 12] = 10;
    b.srcAddr[o + 13] = 1;
    b.srcAddr[o + 14] = (i >> 8) & 255;
    b.srcAddr[o + 15] = i & 255;
    srcNode.codes[i] = nodeCode;
    b.dstAddr[o + 10] = b.dstAddr[o + 11] = 0xff;
    const d = next();
    b.dstAddr[o + 12] = d >>> 24;
    b.dstAddr[o + 13] = d >>> 16;
    b.dstAddr[o + 14] = d >>> 8;
    b.dstAddr[o + 15] = d;
    b.txBytes[i] = next() % 100_000;
    b.rxBytes[i] = next() % 1_000_000;
    cls.codes[i] = classCodes[next() % classCodes.length];
    src.codes[i] = srcCodes[next() % srcCodes.length];
    dst.codes[i] = dstCodes[next() % dstCodes.length];
  }
  return b;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const SCENARIOS = [
  ['aws, no NAT', { provider: 'aws' }],
  [
    'aws, NAT on 2 classes, 3 excluded CIDRs',
    {
      provider: 'aws',
      nat_gateway: { enabled: true, exclude_cidrs: ['52.216.0.0/15', '3.5.0.0/19', '54.231.0.0/16'] },
    },
  ],
];

for (const n of SIZES) {
  const batch = makeBatch(n, n);
  for (const [name, config] of SCENARIOS) {
    const p = await costProcessorFactory.create(
      settings('processor', 'cost'),
      costProcessorFactory.config.parse(config),
      'flows',
    );
    p.process(batch); // warm-up: JIT, region pairs
    const times = [];
    for (let r = 0; r < ROUNDS; r++) {
      const start = performance.now();
      p.process(batch);
      times.push(performance.now() - start);
    }
    const ms = median(times);
    report(
      `${(n / 1000).toLocaleString('en-US')}k rows, ${name}`,
      n / (ms / 1000),
      'rows/s',
      `${ms.toFixed(2)} ms per batch`,
    );
  }
}
