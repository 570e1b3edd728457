// The destination patterns netmon ships — private endpoints, managed control planes, cloud load
// balancers, cloud APIs and the instance metadata services, by address and DNS name — as data. Order
// matters: the first pattern that matches either end of a flow wins, so the specific AWS names come
// before `*.amazonaws.com`. Users replace the whole list with `patterns:` in the config.
//
// A cloud's own endpoints are that cloud's: same-region traffic to them is not billed as internet egress
// by that cloud, but the same bytes sent from another cloud (a pod on AWS calling www.googleapis.com) are
// ordinary internet egress there. So every pattern naming one cloud's services says which (`provider`)
// and applies only on a cluster of that cloud; elsewhere the flow is classed by its address.
import type { TrafficClass } from './classes.js';

/** The clouds a pattern can belong to: the names k8s_metadata reads from the nodes' spec.providerID. */
export const CLOUD_PROVIDERS = ['aws', 'gcp', 'azure'] as const;
export type CloudProvider = (typeof CLOUD_PROVIDERS)[number];

export interface DestinationPattern {
  class: TrafficClass;
  /** Addresses or CIDRs; the most specific CIDR of a pattern list wins for an address. */
  cidrs: string[];
  /** DNS names; `*` matches any run of characters, dots included. Needs domains (dst.domain or dns_cache). */
  domains: string[];
  /**
   * The cloud(s) these destinations belong to: the pattern applies only while the cluster's provider is
   * one of them (never while it is unknown). Absent: on every cluster.
   */
  provider?: CloudProvider[];
}

export const DEFAULT_PATTERNS: DestinationPattern[] = [
  // AWS interface endpoints (PrivateLink).
  { class: 'private_link', provider: ['aws'], cidrs: [], domains: ['*.vpce.amazonaws.com'] },
  // Private Link names on every cloud: Azure's private DNS zones (privatelink.blob.core.windows.net, …)
  // and third parties' PrivateLink / Private Service Connect names on AWS and GCP too (e.g.
  // <account>.privatelink.snowflakecomputing.com). Such a name resolves to an endpoint in your own network.
  { class: 'private_link', cidrs: [], domains: ['*.privatelink.*'] },
  // GCP Private Service Connect endpoints for Google APIs.
  { class: 'private_link', provider: ['gcp'], cidrs: [], domains: ['*.p.googleapis.com'] },
  // Managed API servers. (A cluster's own `kubernetes` Service is recognised without a pattern.)
  { class: 'k8s_control_plane', provider: ['aws'], cidrs: [], domains: ['*.eks.amazonaws.com'] },
  { class: 'k8s_control_plane', provider: ['azure'], cidrs: [], domains: ['*.azmk8s.io'] },
  // AWS ELB names. (A Service's load-balancer IPs are recognised without a pattern.)
  { class: 'load_balancer', provider: ['aws'], cidrs: [], domains: ['*.elb.amazonaws.com'] },
  // The instance metadata address all three clouds serve (link-local: it never leaves the host's network).
  { class: 'cloud_api', cidrs: ['169.254.169.254/32'], domains: [] },
  // AWS: its APIs, and the instance metadata service over IPv6 (Nitro).
  { class: 'cloud_api', provider: ['aws'], cidrs: ['fd00:ec2::254/128'], domains: ['*.amazonaws.com'] },
  // GCP: its APIs and the metadata server's name.
  {
    class: 'cloud_api',
    provider: ['gcp'],
    cidrs: [],
    domains: ['*.googleapis.com', 'metadata.google.internal'],
  },
  // Azure: its platform address (WireServer, DNS, health probes; a public address elsewhere), storage
  // and Resource Manager.
  {
    class: 'cloud_api',
    provider: ['azure'],
    cidrs: ['168.63.129.16/32'],
    domains: ['*.core.windows.net', 'management.azure.com'],
  },
];

/**
 * Whether a pattern applies on a cluster of `provider` (undefined: not known, or known to be none): one
 * that names providers only on one of them, so that while the provider is unknown another cloud's
 * endpoints are never taken for this cloud's (free) ones.
 */
export function patternApplies(
  p: Pick<DestinationPattern, 'provider'>,
  provider: string | undefined,
): boolean {
  const names: readonly string[] | undefined = p.provider;
  return names === undefined || (provider !== undefined && names.includes(provider));
}

/** A domain glob as a regular expression: `*` is any run of characters, the rest is literal. */
export function domainRegExp(glob: string): RegExp {
  const body = glob
    .toLowerCase()
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}\\.?$`);
}
