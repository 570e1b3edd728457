import { z } from 'zod';

const MIN_LINE_BYTES = 1024;
const MAX_LINE_BYTES = 64 * 1024 * 1024;

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
    max_line_bytes: z
      .number({ error: 'expected a whole number of bytes, 1024 – 67108864 (64 MiB)' })
      .int('expected a whole number of bytes')
      .min(MIN_LINE_BYTES, `expected at least ${MIN_LINE_BYTES} bytes: a flow record line is a few hundred`)
      .max(
        MAX_LINE_BYTES,
        `expected at most ${MAX_LINE_BYTES} bytes (64 MiB): a line is held in memory whole`,
      )
      .default(1024 * 1024)
      .describe(
        'Longest line taken, in bytes without its line ending (1024 – 67108864). A longer line is skipped and counted (reason too_long) without being held in memory.',
      ),
    checkpoint_file: z
      .string({ error: 'expected the path of a file to keep the replay position in' })
      .min(1, 'checkpoint_file must not be empty')
      .optional()
      .describe(
        'File where the receiver keeps how far into the replayed file it has handed records to the pipeline (rewritten atomically as batches go out, with the identity of the file), so a restart resumes after the last record handed over instead of replaying from the first line; a replaced or truncated file is replayed from the start. A relative path resolves against the config file; missing directories are created. Unset: every start replays from the beginning.',
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
