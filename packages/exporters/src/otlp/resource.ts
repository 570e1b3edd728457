// The resource of every request: who sends (netmon on which node of which cluster, in which cloud zone).
// Node facts come from the k8s_metadata extension when it is enabled.
import { hostname } from 'node:os';
import type { K8sMetadata, NodeRecord } from '@netmon/extensions';
import type { Attributes } from '@opentelemetry/api';

/** The part of the k8s_metadata extension the resource is made from. */
export interface NodeFacts extends Pick<K8sMetadata, 'nodeName' | 'provider'> {
  readonly store: { node(name: string): Pick<NodeRecord, 'zone' | 'region' | 'provider'> | undefined };
}

/** The environment variable k8s.cluster.name comes from when `resource` does not set it. */
export const CLUSTER_NAME_ENV = 'CLUSTER_NAME';

/**
 * service.name, service.version and service.instance.id (the node's name, else the host's: one agent per
 * node, and a Collector's Prometheus exporter tells senders apart by job and instance only), then what the
 * extension knows about this node (k8s.node.name, cloud.provider, cloud.region, cloud.availability_zone),
 * NODE_NAME without it, k8s.cluster.name from CLUSTER_NAME (the Kubernetes API has no cluster name, so
 * the install says it), then the configured `resource` on top: a configured empty value removes the
 * attribute.
 */
export function resourceAttributes(
  version: string,
  facts: NodeFacts | undefined,
  configured: Readonly<Record<string, string>>,
  env: NodeJS.ProcessEnv = process.env,
  host: string = hostname(),
): Attributes {
  const nodeName = facts?.nodeName ?? (env.NODE_NAME || undefined);
  const attrs: Record<string, string> = {
    'service.name': 'netmon',
    'service.version': version,
    'service.instance.id': nodeName ?? host,
  };
  if (nodeName) attrs['k8s.node.name'] = nodeName;
  const cluster = env[CLUSTER_NAME_ENV];
  if (cluster) attrs['k8s.cluster.name'] = cluster;
  if (facts) {
    const node = nodeName ? facts.store.node(nodeName) : undefined;
    const provider = node?.provider ?? facts.provider();
    if (provider) attrs['cloud.provider'] = provider;
    if (node?.region) attrs['cloud.region'] = node.region;
    if (node?.zone) attrs['cloud.availability_zone'] = node.zone;
  }
  for (const [key, value] of Object.entries(configured)) {
    if (value === '') delete attrs[key];
    else attrs[key] = value;
  }
  return attrs;
}
