import { z } from 'zod';

export const fileReceiverConfig = z
  .strictObject({
    path: z
      .string({ error: 'required: the JSON Lines file of flow records to replay' })
      .min(1, 'path must not be empty')
      .describe(
        'JSON Lines file of flow records to replay. A relative path resolves against the config file.',
      ),
    temporality: z
      .enum(['delta', 'cumulative'])
      .default('delta')
      .describe(
        'How the counters in the file are meant: per-interval deltas, or cumulative counters (as conntrack reports them). Sets the temporality mark of every batch.',
      ),
    batch_size: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(4096)
      .describe('Most flows per batch. A batch never spans two intervals, so it may hold fewer.'),
    loop: z
      .boolean()
      .default(false)
      .describe(
        "Replay from the start again when the file ends, shifting every timestamp forward by the file's time span each round so time keeps moving forward. Not allowed with temporality: cumulative.",
      ),
    pace: z
      .enum(['none', 'recorded'])
      .default('none')
      .describe(
        'none: emit as fast as the pipeline takes it. recorded: emit each interval (consecutive records with the same time_end) at the spacing recorded between time_ends, divided by speed.',
      ),
    speed: z
      .number()
      .positive()
      .max(1_000_000)
      .default(1)
      .describe('With pace: recorded, how many times faster than recorded to replay (2 = twice as fast).'),
    backpressure: z
      .boolean()
      .default(true)
      .describe(
        'Wait until the pipeline queues have room before each batch, so nothing is dropped. false behaves like a kernel source that cannot pause: full queues drop batches (useful for load tests).',
      ),
  })
  .superRefine((c, ctx) => {
    if (c.loop && c.temporality === 'cumulative') {
      ctx.addIssue({
        code: 'custom',
        path: ['loop'],
        message:
          'loop cannot be combined with temporality: cumulative: every round restarts the counters at their first values, so cumulative counters would go backwards; use temporality: delta or loop: false',
      });
    }
  });

export type FileReceiverConfig = z.output<typeof fileReceiverConfig>;
