// A replay with k8s_metadata reading a cluster snapshot, on a machine whose eth0 is 192.0.2.2: the real
// extension over the replay sample's snapshot, classify and cost as the agent makes them (neither handed
// a set of addresses). The flows were recorded on the cluster's nodes, so this machine's address is just
// another public destination.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Extension, FlowBatch, FlowFlags, StatusBoard } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { K8S_METADATA, k8sMetadataConfig } from '@netmon/extensions';
import { K8sMetadataExtension } from '@netmon/extensions/k8s_metadata';
import { describe, expect, it } from 'vitest';
import { costProcessorConfig } from '../cost/config.js';
import { costProcessorFactory } from '../cost/factory.js';
import { classifyConfig } from './config.js';
import { classifyProcessorFactory } from './factory.js';
import { HostAddresses } from './local.js';
import { eth0 } from './testdata/interfaces.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const CLUSTER = path.join(ROOT, 'configs/examples/replay-cluster.json');
const GB = 1e9;

const thisMachine = eth0('192.0.2.2');

async function snapshot(): Promise<K8sMetadataExtension> {
  const ext = new K8sMetadataExtension(
    testSettings('extension', 'k8s_metadata'),
    k8sMetadataConfig.parse({ snapshot: CLUSTER }),
    { env: {} },
  );
  await ext.start();
  return ext;
}

async function replay(config: Record<string, unknown>) {
  // One set of this host's addresses per extension: each case loads its own.
  const ext = await snapshot();
  HostAddresses.of(ext, { interfaces: thisMachine });
  const extensions = new Map<string, Extension>([[K8S_METADATA, ext]]);
  const board = new StatusBoard();
  const classify = await classifyProcessorFactory.create(
    testSettings('processor', 'classify', { extensions, board }),
    classifyConfig.parse({ exactly_once: false, ...config }),
    'flows',
  );
  const cost = await costProcessorFactory.create(
    testSettings('processor', 'cost', { extensions }),
    costProcessorConfig.parse({}),
    'flows',
  );
  // payments-api (eu-west-1c) sends 1 GB to this machine's address and 1 GB to its neighbour
  const flows = ['192.0.2.2', '192.0.2.9'].map((dst) => ({
    timeStart: 0,
    timeEnd: 10_000,
    protocol: 6,
    srcIp: '10.0.3.27',
    srcPort: 40000,
    dstIp: dst,
    dstPort: 443,
    txBytes: GB,
    rxBytes: 0,
    flags: FlowFlags.InitiatorKnown,
  }));
  const out = (await cost.process((await classify.process(FlowBatch.from(flows))) as FlowBatch)) as FlowBatch;
  await ext.shutdown();
  return {
    rows: [...out].map((r) => [r.get('dst.kind'), r.get('traffic.class'), r.get('cost.usd')]),
    status: board.all()[0].details?.() as Record<string, unknown>,
  };
}

describe('a snapshot replay on another machine', () => {
  it('the extension says it is offline; one that watches (or not) is not', async () => {
    const ext = await snapshot();
    expect(ext.offline).toBe(true);
    await ext.shutdown();
    const standalone = new K8sMetadataExtension(
      testSettings('extension', 'k8s_metadata'),
      k8sMetadataConfig.parse({ standalone: true }),
      { env: {} },
    );
    expect(standalone.offline).toBe(false);
  });

  it('this machine’s 192.0.2.2 is internet egress like 192.0.2.9, priced at eu-west-1’s $0.09/GB', async () => {
    const { rows, status } = await replay({});
    expect(rows).toEqual([
      ['external_public', 'internet_egress', expect.closeTo(0.09, 12)],
      ['external_public', 'internet_egress', expect.closeTo(0.09, 12)],
    ]);
    // no node_name: no node record, loopback only
    expect(status).toMatchObject({ host_addresses: [], host_addresses_count: 0 });
    expect(status.host_interfaces).toMatch(/^not read \(auto: k8s_metadata reads a snapshot/);
  });

  it('host_interfaces: true (the flows were recorded here): this node, in the cluster, free', async () => {
    const { rows, status } = await replay({ host_interfaces: true });
    // Not external_private: an end on this host is on this node; its zone is unknown without node_name.
    expect(rows).toEqual([
      ['node', 'same_zone', 0],
      ['external_public', 'internet_egress', expect.closeTo(0.09, 12)],
    ]);
    expect(status.host_addresses).toEqual(['192.0.2.2']);
  });
});
