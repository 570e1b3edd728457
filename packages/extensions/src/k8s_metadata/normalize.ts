// Kubernetes objects → the store's records. Objects arrive two ways from @kubernetes/client-node: class
// instances from a list (Date fields) and plain JSON from a watch; both use the same camelCase field
// names, so one reader serves both. Only the fields flows are labelled with are kept.
import type { EndpointSliceRecord, NodeRecord, PodRecord, ServiceRecord } from './store.js';

// biome-ignore lint/suspicious/noExplicitAny: API objects are read defensively, field by field.
type Obj = any;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : [];

/**
 * The annotation the kubelet puts on the mirror pod it creates in the API for a static pod: the hash of the
 * pod's manifest, which is also the static pod's UID on the node (and so its cgroup's name), while the mirror
 * pod gets a UID of its own from the API server. See the kubelet's pkg/kubelet/config/common.go (the hash
 * as UID) and pkg/kubelet/pod/mirror_client.go (the annotation), https://github.com/kubernetes/kubernetes.
 */
export const CONFIG_MIRROR = 'kubernetes.io/config.mirror';

export function podRecord(pod: Obj, labelKeys: ReadonlySet<string>): PodRecord | undefined {
  const meta = pod?.metadata;
  const uid = str(meta?.uid);
  const name = str(meta?.name);
  const namespace = str(meta?.namespace);
  if (!uid || !name || !namespace) return undefined;
  const status = pod.status ?? {};
  const podIps = Array.isArray(status.podIPs) ? status.podIPs.map((p: Obj) => p?.ip) : [];
  const ips = strings(podIps);
  if (ips.length === 0 && str(status.podIP)) ips.push(status.podIP);
  const labels: Record<string, string> = {};
  const all = meta.labels ?? {};
  for (const key of labelKeys) if (typeof all[key] === 'string') labels[key] = all[key];
  const workload = workloadOf(pod);
  return {
    uid,
    namespace,
    name,
    nodeName: str(pod.spec?.nodeName),
    phase: str(status.phase) ?? 'Unknown',
    hostNetwork: pod.spec?.hostNetwork === true,
    ips,
    workloadKind: workload.kind,
    workloadName: workload.name,
    labels,
    configHash: str(meta.annotations?.[CONFIG_MIRROR]),
  };
}

/**
 * The workload a pod belongs to, from the pod alone (no ReplicaSet or Job watch: they would cost memory
 * and RBAC on every node):
 * - ReplicaSet → Deployment when the pod's `pod-template-hash` label is the ReplicaSet name's suffix, which
 *   the Deployment controller guarantees; a ReplicaSet without it is reported as itself.
 * - Job → CronJob when the Job's name is `<cronjob>-<scheduled time in minutes since 1970>`, the CronJob
 *   controller's naming; a hand-made Job with such a name would be misread, a risk we accept.
 * - StatefulSet, DaemonSet, ReplicationController and other controllers as themselves; a bare pod as Pod.
 */
export function workloadOf(pod: Obj): { kind: string; name: string } {
  const refs: Obj[] = Array.isArray(pod?.metadata?.ownerReferences) ? pod.metadata.ownerReferences : [];
  const owner = refs.find((r) => r?.controller === true) ?? refs[0];
  const kind = str(owner?.kind);
  const name = str(owner?.name);
  if (!kind || !name) return { kind: 'Pod', name: pod?.metadata?.name ?? '' };
  if (kind === 'ReplicaSet') {
    const hash = str(pod.metadata.labels?.['pod-template-hash']);
    if (hash && name.endsWith(`-${hash}`))
      return { kind: 'Deployment', name: name.slice(0, -hash.length - 1) };
  }
  if (kind === 'Job') {
    const m = /^(.+)-(\d{8,10})$/.exec(name);
    // Scheduled minutes between 2015 (CronJob's first release) and a day from now.
    if (m && Number(m[2]) >= 23_000_000 && Number(m[2]) <= Date.now() / 60_000 + 1440) {
      return { kind: 'CronJob', name: m[1] };
    }
  }
  return { kind, name };
}

export function nodeRecord(node: Obj): NodeRecord | undefined {
  const name = str(node?.metadata?.name);
  if (!name) return undefined;
  const labels = node.metadata.labels ?? {};
  const addresses: Obj[] = Array.isArray(node.status?.addresses) ? node.status.addresses : [];
  const podCidrs = strings(node.spec?.podCIDRs);
  if (podCidrs.length === 0 && str(node.spec?.podCIDR)) podCidrs.push(node.spec.podCIDR);
  return {
    name,
    zone: str(labels['topology.kubernetes.io/zone']) ?? str(labels['failure-domain.beta.kubernetes.io/zone']),
    region:
      str(labels['topology.kubernetes.io/region']) ?? str(labels['failure-domain.beta.kubernetes.io/region']),
    provider: providerOf(str(node.spec?.providerID)),
    ips: strings(
      addresses.filter((a) => a?.type === 'InternalIP' || a?.type === 'ExternalIP').map((a) => a.address),
    ),
    podCidrs,
  };
}

/** `aws:///us-east-1a/i-…` → aws, `gce://project/zone/name` → gcp, `azure:///subscriptions/…` → azure. */
export function providerOf(providerId: string | undefined): string | undefined {
  if (!providerId) return undefined;
  const scheme = /^([a-z0-9-]+):\/\//i.exec(providerId)?.[1]?.toLowerCase();
  if (!scheme) return undefined;
  return scheme === 'gce' ? 'gcp' : scheme;
}

export function serviceRecord(svc: Obj): ServiceRecord | undefined {
  const name = str(svc?.metadata?.name);
  const namespace = str(svc?.metadata?.namespace);
  if (!name || !namespace) return undefined;
  const spec = svc.spec ?? {};
  const clusterIps = strings(spec.clusterIPs);
  if (clusterIps.length === 0 && str(spec.clusterIP)) clusterIps.push(spec.clusterIP);
  const ingress: Obj[] = Array.isArray(svc.status?.loadBalancer?.ingress)
    ? svc.status.loadBalancer.ingress
    : [];
  return {
    namespace,
    name,
    type: str(spec.type) ?? 'ClusterIP',
    clusterIps: clusterIps.filter((ip) => ip !== 'None'),
    loadBalancerIps: [...strings(ingress.map((i) => i?.ip)), ...strings(spec.externalIPs)],
  };
}

export function endpointSliceRecord(slice: Obj): EndpointSliceRecord | undefined {
  const name = str(slice?.metadata?.name);
  const namespace = str(slice?.metadata?.namespace);
  const service = str(slice?.metadata?.labels?.['kubernetes.io/service-name']);
  if (!name || !namespace || !service) return undefined;
  const ports: number[] = Array.isArray(slice.ports)
    ? slice.ports.map((p: Obj) => p?.port).filter((p: unknown): p is number => typeof p === 'number')
    : [];
  const endpoints: Obj[] = Array.isArray(slice.endpoints) ? slice.endpoints : [];
  return {
    namespace,
    name,
    service,
    ports,
    endpoints: endpoints.map((e) => ({
      ips: strings(e?.addresses),
      podRef:
        e?.targetRef?.kind === 'Pod' ? (str(e.targetRef.uid) ?? str(e.targetRef.name) ?? '') : undefined,
    })),
  };
}
