// Enrichment path: k8s_attributes + classify + cost over a replayed stream of flow batches, on the built
// packages, against a cluster-scope metadata store of PODS pods on NODES nodes in three zones.
//   make build && .tools/bin/node --expose-gc bench/enrich.mjs
// FLOWS=1000000 BATCH=8192 PODS=10000,100000 NODES=100 ROUNDS=5 by default. Prints one line per
// measurement; docs/PERFORMANCE.md keeps the figures.
import { performance } from 'node:perf_hooks';
import { FlowBatch, FlowFlags } from '@netmon/core';
import { MetadataStore, resolveBatch } from '@netmon/extensions';
import * as processors from '@netmon/processors';
import { gc, report, rng, settings } from './common.mjs';

const FLOWS = Number(process.env.FLOWS ?? 1_000_000);
const BATCH = Number(process.env.BATCH ?? 8192);
const PODS = (process.env.PODS ?? '10000,100000').split(',').map(Number);
const NODES = Number(process.env.NODES ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const t0 = Date.parse('2026-01-01T00:00:00Z');
const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];

const podIp = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const nodeIp = (i) => `10.250.${i >> 8}.${i & 255}`;
const serviceIp = (i) => `172.20.${(i >> 8) & 255}.${i & 255}`;
const SERVICES = (pods) => Math.max(1, Math.floor(pods / 10));

/** A cluster-scope store: PODS pods spread over NODES nodes, one Service (with a slice) per ten pods. */
function makeStore(pods) {
  const store = new MetadataStore();
  for (let n = 0; n < NODES; n++) {
    store.upsertNode({
      name: `node-${n}`,
      zone: ZONES[n % 3],
      region: 'us-east-1',
      provider: 'aws',
      ips: [nodeIp(n)],
      podCidrs: [],
    });
  }
  for (let i = 0; i < pods; i++) {
    const deployment = `app-${Math.floor(i / 10)}`;
    store.upsertPod({
      uid: `uid-${i}`,
      namespace: `ns-${i % 50}`,
      name: `${deployment}-6d4cf56db6-${i.toString(36).padStart(5, 'x')}`,
      nodeName: `node-${i % NODES}`,
      phase: 'Running',
      hostNetwork: false,
      ips: [podIp(i + 1)],
      workloadKind: 'Deployment',
      workloadName: deployment,
      labels: { app: deployment },
    });
  }
  for (let s = 0; s < SERVICES(pods); s++) {
    store.upsertService({
      namespace: `ns-${s % 50}`,
      name: `app-${s}`,
      type: 'ClusterIP',
      clusterIps: [serviceIp(s)],
      loadBalancerIps: [],
    });
    store.upsertEndpointSlice({
      namespace: `ns-${s % 50}`,
      name: `app-${s}-x`,
      service: `app-${s}`,
      ports: [8080],
      endpoints: Array.from({ length: 10 }, (_, k) => ({
        ips: [podIp(s * 10 + k + 1)],
        podRef: `uid-${s * 10 + k}`,
      })),
    });
  }
  return store;
}

function put4(buf, off, text) {
  const p = text.split('.').map(Number);
  buf.fill(0, off, off + 10);
  buf[off + 10] = 0xff;
  buf[off + 11] = 0xff;
  for (let k = 0; k < 4; k++) buf[off + 12 + k] = p[k];
}

/**
 * The flows a node's conntrack reports: sources are this node's pods (node-0), destinations 55% pods
 * anywhere, 20% Services (DNAT to a backend), 15% the internet, 10% the node's own traffic to peers.
 */
function makeBatches(pods) {
  const next = rng(7);
  const local = [];
  for (let i = 0; i < pods; i += NODES) local.push(i);
  const batches = [];
  for (let done = 0; done < FLOWS; done += BATCH) {
    const n = Math.min(BATCH, FLOWS - done);
    const b = new FlowBatch(n, 'delta');
    b.length = n;
    for (let r = 0; r < n; r++) {
      const off = 16 * r;
      const kind = next() % 100;
      put4(b.srcAddr, off, kind < 90 ? podIp(local[next() % local.length] + 1) : nodeIp(0));
      if (kind < 55) put4(b.dstAddr, off, podIp((next() % pods) + 1));
      else if (kind < 75) {
        const s = next() % SERVICES(pods);
        put4(b.dstAddr, off, serviceIp(s));
        put4(b.backendAddr, off, podIp(s * 10 + (next() % 10) + 1));
        b.backendPort[r] = 8080;
        b.flags[r] |= FlowFlags.Dnat;
      } else if (kind < 90)
        put4(b.dstAddr, off, `${52 + (next() % 10)}.${next() % 256}.${next() % 256}.${next() % 256}`);
      else put4(b.dstAddr, off, nodeIp(next() % NODES));
      b.family[r] = 4;
      b.protocol[r] = 6;
      b.srcPort[r] = 32768 + (next() % 28000);
      b.dstPort[r] = kind < 75 ? 8080 : 443;
      b.txBytes[r] = next() % 100000;
      b.rxBytes[r] = next() % 1000000;
      b.flags[r] |= FlowFlags.InitiatorKnown;
      b.timeStart[r] = t0;
      b.timeEnd[r] = t0 + 5000;
    }
    batches.push(b);
  }
  return batches;
}

function metadataOver(store) {
  return {
    store,
    nodeName: 'node-0',
    standalone: false,
    offline: false,
    requestPodLabels() {},
    synced: () => true,
    provider: () => 'aws',
    resolve: (batch) => resolveBatch(store, batch),
  };
}

async function chain(store) {
  const extensions = new Map([['k8s_metadata', metadataOver(store)]]);
  const make = (f, config = {}) =>
    f.create(settings('processor', f.type, { extensions }), f.config.parse(config), 'flows');
  const stages = [
    ['k8s_attributes', await make(processors.k8sAttributesProcessorFactory)],
    // exactly_once off: every generated flow is this node's anyway, and the count stays FLOWS.
    ['classify', await make(processors.classifyProcessorFactory, { exactly_once: false })],
  ];
  if (processors.costProcessorFactory)
    stages.push(['cost', await make(processors.costProcessorFactory, { provider: 'aws' })]);
  return stages;
}

for (const pods of PODS) {
  gc();
  const before = process.memoryUsage().heapUsed;
  const t = performance.now();
  const store = makeStore(pods);
  const built = performance.now() - t;
  gc();
  const heap = process.memoryUsage().heapUsed - before;
  report(
    `metadata store, ${pods.toLocaleString('en-US')} pods (cluster scope)`,
    heap / 2 ** 20,
    'MiB heap',
    `${Math.round(heap / pods)} B/pod, built in ${Math.round(built)} ms`,
  );

  const templates = makeBatches(pods);
  const stages = await chain(store);
  const perStage = new Map(stages.map(([name]) => [name, []]));
  const totals = [];
  for (let round = 0; round < ROUNDS; round++) {
    const batches = templates.map((b) => b.clone());
    gc();
    let total = 0;
    for (const b of batches) {
      let batch = b;
      for (const [name, p] of stages) {
        const s = performance.now();
        batch = p.process(batch);
        const dt = performance.now() - s;
        perStage.get(name).push(dt);
        total += dt;
      }
    }
    totals.push(total);
  }
  const best = Math.min(...totals);
  const median = totals.sort((a, b) => a - b)[Math.floor(totals.length / 2)];
  report(
    `${stages.map(([n]) => n).join(' + ')}, ${pods.toLocaleString('en-US')} pods`,
    (FLOWS / median) * 1000,
    'flows/s',
    `median of ${ROUNDS}; best ${Math.round((FLOWS / best) * 1000).toLocaleString('en-US')}`,
  );
  for (const [name, times] of perStage) {
    const perRound = [];
    for (let r = 0; r < ROUNDS; r++)
      perRound.push(times.slice(r * templates.length, (r + 1) * templates.length).reduce((a, b) => a + b, 0));
    perRound.sort((a, b) => a - b);
    report(`  ${name} alone`, (FLOWS / perRound[Math.floor(ROUNDS / 2)]) * 1000, 'flows/s');
  }
}
