// The vocabulary classify writes: values users see in flow records and metric labels, so renaming one
// needs a migration note. Indexes are stable within a process and used by the cost processor's tables;
// the strings are the contract.

/** The attribute classify writes and cost and filter read. */
export const TRAFFIC_CLASS = 'traffic.class';

export const TRAFFIC_CLASSES = [
  'same_node',
  'same_zone',
  'cross_zone',
  'cross_region',
  'internet_egress',
  'internet_ingress',
  'private_link',
  'cloud_api',
  'k8s_control_plane',
  'load_balancer',
  'external_private',
] as const;
export type TrafficClass = (typeof TRAFFIC_CLASSES)[number];

export const DESTINATION_KINDS = [
  'pod',
  'service',
  'node',
  'endpoint',
  'external_public',
  'external_private',
] as const;
export type DestinationKind = (typeof DESTINATION_KINDS)[number];
