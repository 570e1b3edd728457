import { duration } from '@netmon/core';
import { z } from 'zod';

export const deltaProcessorConfig = z.strictObject({
  state_file: z
    .string()
    .min(1, 'state_file must not be empty')
    .optional()
    .describe(
      'File the flow baselines are kept in across restarts (binary, written atomically). A relative path resolves against the config file; missing directories are created. Unset: state lives in memory only, and after a restart the first snapshot is a new baseline (the bytes counted while the agent was down are not reported).',
    ),
  checkpoint_interval: duration()
    .prefault('0s')
    .describe(
      'How often the state is written. 0s: before the deltas of every batch are passed on (a snapshot rewrites the state file, other batches append to its journal), so a crash never repeats a byte (deltas passed on but not yet exported when it happens are lost). Longer: the file is rewritten at most once per interval, without a journal; after a crash, deltas passed on since the last write are reported again.',
    ),
});

export type DeltaProcessorConfig = z.output<typeof deltaProcessorConfig>;
