import { describe, expect, it } from 'vitest';
import { type NodeFacts, resourceAttributes } from './resource.js';

const facts: NodeFacts = {
  nodeName: 'n1',
  store: { node: (name) => (name === 'n1' ? { zone: 'z1', region: 'r1' } : undefined) },
  provider: () => 'azure',
};

describe('otlp resource', () => {
  it('without the extension: service, and NODE_NAME when set', () => {
    expect(resourceAttributes('1.2.3', undefined, {}, {}, 'box')).toEqual({
      'service.name': 'netmon',
      'service.version': '1.2.3',
      'service.instance.id': 'box',
    });
    expect(resourceAttributes('1', undefined, {}, { NODE_NAME: 'n9' }, 'box')).toMatchObject({
      'k8s.node.name': 'n9',
      'service.instance.id': 'n9',
    });
  });

  it('with it: node, zone, region; the provider from the node or the cluster; config wins, "" removes', () => {
    expect(resourceAttributes('1', facts, { 'cloud.region': 'override', 'service.name': '' }, {})).toEqual({
      'service.version': '1',
      'service.instance.id': 'n1',
      'k8s.node.name': 'n1',
      'cloud.provider': 'azure',
      'cloud.region': 'override',
      'cloud.availability_zone': 'z1',
    });
  });

  it('k8s.cluster.name from CLUSTER_NAME unless resource sets it (or removes it with "")', () => {
    const env = { CLUSTER_NAME: 'prod-eu', NODE_NAME: 'n9' };
    expect(resourceAttributes('1', undefined, {}, env, 'box')['k8s.cluster.name']).toBe('prod-eu');
    expect(
      resourceAttributes('1', undefined, { 'k8s.cluster.name': 'other' }, env, 'box')['k8s.cluster.name'],
    ).toBe('other');
    expect(resourceAttributes('1', undefined, { 'k8s.cluster.name': '' }, env, 'box')).not.toHaveProperty(
      'k8s.cluster.name',
    );
    expect(resourceAttributes('1', facts, {}, { CLUSTER_NAME: '' })).not.toHaveProperty('k8s.cluster.name');
  });
});
