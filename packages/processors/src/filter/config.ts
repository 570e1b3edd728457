import { cidr, GRANULARITIES } from '@netmon/core';
import { z } from 'zod';
import { TRAFFIC_CLASSES } from '../classify/classes.js';

const port = z.union([
  z.number().int().min(0).max(65535),
  z
    .string()
    .regex(/^\d{1,5}-\d{1,5}$/, 'a port range is written "low-high", e.g. "8000-8100"')
    .refine((r) => {
      const [lo, hi] = r.split('-').map(Number);
      return lo <= hi && hi <= 65535;
    }, 'a port range needs low <= high <= 65535'),
]);

const match = z
  .strictObject({
    namespaces: z.array(z.string().min(1)).optional().describe('Either end in one of these namespaces.'),
    workloads: z
      .array(z.string().min(1))
      .optional()
      .describe('Either end in one of these workloads: `name`, `Kind/name` or `namespace/Kind/name`.'),
    classes: z.array(z.enum(TRAFFIC_CLASSES)).optional().describe('`traffic.class` is one of these.'),
    cidrs: z.array(cidr()).optional().describe('Either end’s address is in one of these CIDRs.'),
    ports: z
      .array(port)
      .optional()
      .describe('The destination port (the server’s) is one of these; ranges as "8000-8100".'),
  })
  .describe('Every key given must match (and); within a key, any value (or).');

export const filterConfig = z.strictObject({
  include: match.optional().describe('Keep only flows that match. Unset: keep every flow.'),
  exclude: match.optional().describe('Then drop flows that match. Unset: drop none.'),
  granularity: z
    .enum(GRANULARITIES)
    .default('pod')
    .describe(
      'How fine the Kubernetes attributes stay: `pod` keeps all; `workload` removes pod names and pod labels; `namespace` also removes workload kind and name. Coarser means fewer series in the exporters that aggregate by attributes.',
    ),
});

export type FilterConfig = z.output<typeof filterConfig>;
export type Match = NonNullable<FilterConfig['include']>;
