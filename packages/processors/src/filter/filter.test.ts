import { FlowBatch, type FlowInit } from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import { describe, expect, it } from 'vitest';
import { filterConfig } from './config.js';
import { filterProcessorFactory } from './factory.js';

const T0 = Date.parse('2026-11-21T10:00:00Z');
const flow = (src: string, dst: string, dstPort: number, attributes: FlowInit['attributes']): FlowInit => ({
  timeStart: T0,
  timeEnd: T0 + 5000,
  protocol: 6,
  srcIp: src,
  srcPort: 40000,
  dstIp: dst,
  dstPort,
  txBytes: 100,
  attributes,
});

const sample = () =>
  FlowBatch.from([
    flow('10.1.1.5', '10.1.2.7', 5432, {
      'src.k8s.namespace.name': 'shop',
      'src.k8s.pod.name': 'web-1',
      'src.k8s.workload.kind': 'Deployment',
      'src.k8s.workload.name': 'web',
      'src.k8s.pod.label.app': 'web',
      'dst.k8s.namespace.name': 'shop',
      'dst.k8s.pod.name': 'db-0',
      'dst.k8s.workload.kind': 'StatefulSet',
      'dst.k8s.workload.name': 'db',
      'traffic.class': 'cross_zone',
    }),
    flow('10.1.1.6', '8.8.8.8', 443, {
      'src.k8s.namespace.name': 'monitoring',
      'src.k8s.pod.name': 'prom-0',
      'src.k8s.workload.kind': 'StatefulSet',
      'src.k8s.workload.name': 'prom',
      'traffic.class': 'internet_egress',
    }),
    flow('10.1.4.9', '10.1.1.5', 8080, {
      'src.k8s.namespace.name': 'kube-system',
      'src.k8s.workload.kind': 'DaemonSet',
      'src.k8s.workload.name': 'agent',
      'dst.k8s.namespace.name': 'shop',
      'dst.k8s.pod.name': 'web-1',
      'traffic.class': 'same_zone',
    }),
  ]);

async function run(config: unknown): Promise<FlowBatch | null> {
  const p = await filterProcessorFactory.create(
    testSettings('processor', 'filter'),
    filterConfig.parse(config),
    'flows',
  );
  return ((await p.process(sample())) as FlowBatch | null) ?? null;
}

const dsts = (b: FlowBatch | null) => (b === null ? [] : [...b].map((r) => `${r.dstIp}:${r.dstPort}`));

describe('filter', () => {
  it('keeps by namespace (either end), workload, class, CIDR and port', async () => {
    expect(dsts(await run({ include: { namespaces: ['shop'] } }))).toEqual([
      '10.1.2.7:5432',
      '10.1.1.5:8080',
    ]);
    expect(dsts(await run({ include: { workloads: ['StatefulSet/prom'] } }))).toEqual(['8.8.8.8:443']);
    expect(dsts(await run({ include: { workloads: ['shop/StatefulSet/db', 'agent'] } }))).toEqual([
      '10.1.2.7:5432',
      '10.1.1.5:8080',
    ]);
    expect(dsts(await run({ include: { classes: ['internet_egress', 'cross_zone'] } }))).toEqual([
      '10.1.2.7:5432',
      '8.8.8.8:443',
    ]);
    expect(dsts(await run({ include: { cidrs: ['10.1.4.0/24'] } }))).toEqual(['10.1.1.5:8080']);
    expect(dsts(await run({ include: { ports: [443, '8000-8100'] } }))).toEqual([
      '8.8.8.8:443',
      '10.1.1.5:8080',
    ]);
  });

  it('include keys combine with and; exclude drops what matches; nothing left → null', async () => {
    expect(dsts(await run({ include: { namespaces: ['shop'], ports: [5432] } }))).toEqual(['10.1.2.7:5432']);
    expect(dsts(await run({ exclude: { namespaces: ['kube-system'] } }))).toEqual([
      '10.1.2.7:5432',
      '8.8.8.8:443',
    ]);
    expect(await run({ include: { namespaces: ['nowhere'] } })).toBeNull();
  });

  it('granularity workload drops pod names and labels; namespace drops workloads too', async () => {
    const w = (await run({ granularity: 'workload' })) as FlowBatch;
    expect(w.attributes(0)).toEqual({
      'src.k8s.namespace.name': 'shop',
      'src.k8s.workload.kind': 'Deployment',
      'src.k8s.workload.name': 'web',
      'dst.k8s.namespace.name': 'shop',
      'dst.k8s.workload.kind': 'StatefulSet',
      'dst.k8s.workload.name': 'db',
      'traffic.class': 'cross_zone',
    });
    const ns = (await run({ granularity: 'namespace' })) as FlowBatch;
    expect(ns.attributes(0)).toEqual({
      'src.k8s.namespace.name': 'shop',
      'dst.k8s.namespace.name': 'shop',
      'traffic.class': 'cross_zone',
    });
  });

  it('rejects bad ports, CIDRs, classes and unknown keys', () => {
    expect(filterConfig.safeParse({ include: { ports: ['90-80'] } }).success).toBe(false);
    expect(filterConfig.safeParse({ include: { cidrs: ['10.0.0.0/40'] } }).success).toBe(false);
    expect(filterConfig.safeParse({ include: { classes: ['cross_galaxy'] } }).success).toBe(false);
    expect(filterConfig.safeParse({ include: { namespace: ['a'] } }).success).toBe(false);
  });
});

describeConformance(filterProcessorFactory, {
  config: { exclude: { ports: [53] }, granularity: 'workload' },
});
