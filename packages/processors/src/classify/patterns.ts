// The destination patterns netmon ships — private endpoints, managed control planes, cloud load
// balancers, cloud APIs and the instance metadata services, by address and DNS name — as data. Order
// matters: the first pattern that matches either end of a flow wins, so the specific AWS names come
// before `*.amazonaws.com`. Users replace the whole list with `patterns:` in the config.
import type { TrafficClass } from './classes.js';

export interface DestinationPattern {
  class: TrafficClass;
  /** Addresses or CIDRs; the most specific CIDR of a pattern list wins for an address. */
  cidrs: string[];
  /** DNS names; `*` matches any run of characters, dots included. Needs domains (dst.domain or dns_cache). */
  domains: string[];
}

export const DEFAULT_PATTERNS: DestinationPattern[] = [
  {
    class: 'private_link',
    cidrs: [],
    // AWS interface endpoints, Azure Private Link DNS zones, GCP Private Service Connect names.
    domains: ['*.vpce.amazonaws.com', '*.privatelink.*', '*.p.googleapis.com'],
  },
  {
    class: 'k8s_control_plane',
    cidrs: [],
    // Managed API servers: EKS, AKS. (A cluster's own `kubernetes` Service is recognised without a pattern.)
    domains: ['*.eks.amazonaws.com', '*.azmk8s.io'],
  },
  {
    class: 'load_balancer',
    cidrs: [],
    // AWS ELB names. (A Service's load-balancer IPs are recognised without a pattern.)
    domains: ['*.elb.amazonaws.com'],
  },
  {
    class: 'cloud_api',
    // Instance metadata (AWS, GCP, Azure; AWS's IPv6 endpoint) and Azure's platform endpoint.
    cidrs: ['169.254.169.254/32', 'fd00:ec2::254/128', '168.63.129.16/32'],
    domains: [
      '*.amazonaws.com',
      '*.googleapis.com',
      'metadata.google.internal',
      '*.core.windows.net',
      'management.azure.com',
    ],
  },
];

/** A domain glob as a regular expression: `*` is any run of characters, the rest is literal. */
export function domainRegExp(glob: string): RegExp {
  const body = glob
    .toLowerCase()
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}\\.?$`);
}
