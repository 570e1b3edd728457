import { duration } from '@netmon/core';
import { z } from 'zod';

export const debugExporterConfig = z.strictObject({
  interval: duration({ min: 100 })
    .prefault('10s')
    .describe('How often to print a summary of what arrived since the previous one (at least 100ms).'),
  top: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(10)
    .describe('How many conversations (flows) or questions (dns) the summary lists, largest first.'),
  verbosity: z
    .enum(['basic', 'detailed'])
    .default('basic')
    .describe(
      'basic: the summary only. detailed: also every flow or lookup of the interval, up to 1000 lines.',
    ),
});

export type DebugExporterConfig = z.output<typeof debugExporterConfig>;
