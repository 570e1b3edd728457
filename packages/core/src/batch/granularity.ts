/**
 * How finely Kubernetes identity is kept where flows are summed (filter processor, metric exporters):
 * `pod` keeps pods, `workload` rolls pods up to their workload, `namespace` to their namespace.
 */
export const GRANULARITIES = ['pod', 'workload', 'namespace'] as const;
export type Granularity = (typeof GRANULARITIES)[number];
