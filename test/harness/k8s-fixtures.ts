// Builders of API objects for the Kubernetes API stand-in: the fields netmon reads, shaped as the API
// server sends them (status.podIPs, spec.podCIDRs, discovery.k8s.io/v1 endpoints, ownerReferences).
import type { K8sObject } from './k8s-api.js';

export interface PodSpec {
  namespace?: string;
  name: string;
  node?: string;
  /** One or two (dual-stack) addresses; the first is status.podIP. */
  ips?: string[];
  phase?: string;
  hostNetwork?: boolean;
  labels?: Record<string, string>;
  /** The controlling owner, e.g. { kind: 'ReplicaSet', name: 'web-7d9f8b6c5' }. */
  owner?: { kind: string; name: string };
  uid?: string;
}

export function pod(p: PodSpec): K8sObject {
  const ips = p.ips ?? [];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace ?? 'default',
      ...(p.uid ? { uid: p.uid } : {}),
      labels: p.labels ?? {},
      ...(p.owner
        ? {
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                kind: p.owner.kind,
                name: p.owner.name,
                uid: `${p.owner.name}-uid`,
                controller: true,
              },
            ],
          }
        : {}),
    },
    spec: {
      ...(p.node ? { nodeName: p.node } : {}),
      ...(p.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'main', image: 'registry.example/app:1' }],
    },
    status: {
      phase: p.phase ?? 'Running',
      ...(ips.length > 0 ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
    },
  };
}

export interface NodeSpec {
  name: string;
  /** Zone and region labels; legacy: the failure-domain.beta.kubernetes.io ones instead. */
  zone?: string;
  region?: string;
  legacyLabels?: boolean;
  providerID?: string;
  internalIPs?: string[];
  externalIPs?: string[];
  podCIDRs?: string[];
}

export function node(n: NodeSpec): K8sObject {
  const prefix = n.legacyLabels ? 'failure-domain.beta.kubernetes.io' : 'topology.kubernetes.io';
  const labels: Record<string, string> = { 'kubernetes.io/hostname': n.name };
  if (n.zone) labels[`${prefix}/zone`] = n.zone;
  if (n.region) labels[`${prefix}/region`] = n.region;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels },
    spec: {
      ...(n.providerID ? { providerID: n.providerID } : {}),
      ...(n.podCIDRs?.length ? { podCIDR: n.podCIDRs[0], podCIDRs: n.podCIDRs } : {}),
    },
    status: {
      addresses: [
        ...(n.internalIPs ?? []).map((address) => ({ type: 'InternalIP', address })),
        ...(n.externalIPs ?? []).map((address) => ({ type: 'ExternalIP', address })),
        { type: 'Hostname', address: n.name },
      ],
    },
  };
}

export function service(s: {
  namespace?: string;
  name: string;
  clusterIPs: string[];
  type?: string;
  ports?: number[];
  loadBalancerIPs?: string[];
}): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace ?? 'default' },
    spec: {
      type: s.type ?? 'ClusterIP',
      clusterIP: s.clusterIPs[0],
      clusterIPs: s.clusterIPs,
      ports: (s.ports ?? [80]).map((port) => ({ port, protocol: 'TCP' })),
    },
    status: { loadBalancer: { ingress: (s.loadBalancerIPs ?? []).map((ip) => ({ ip })) } },
  };
}

export function endpointSlice(e: {
  namespace?: string;
  name: string;
  service: string;
  ports: number[];
  /** Endpoints; `pod` (a name) makes a targetRef to that pod. */
  endpoints: { addresses: string[]; pod?: string }[];
  addressType?: 'IPv4' | 'IPv6';
}): K8sObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: e.name,
      namespace: e.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': e.service },
    },
    addressType: e.addressType ?? 'IPv4',
    ports: e.ports.map((port) => ({ port, protocol: 'TCP' })),
    endpoints: e.endpoints.map((ep) => ({
      addresses: ep.addresses,
      conditions: { ready: true },
      ...(ep.pod ? { targetRef: { kind: 'Pod', name: ep.pod, namespace: e.namespace ?? 'default' } } : {}),
    })),
  };
}
