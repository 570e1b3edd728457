// The file receiver's self-metrics, declared once: the receiver observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

/** Why a line was skipped: the values of the `reason` attribute. */
export const SKIP_REASONS = ['not_json', 'invalid', 'too_long'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export const FILE_RECEIVER_METRICS = defineMetrics({
  malformed: {
    name: 'netmon_file_receiver_malformed_records',
    kind: 'counter',
    unit: '{record}',
    description: 'Lines of the replayed file that were not valid flow records and were skipped.',
    attributes: {
      reason:
        'not_json (the line is not JSON), invalid (JSON, but not a valid flow record) or too_long (longer than max_line_bytes; its bytes are skipped unread)',
    },
  },
  checkpointFailures: {
    name: 'netmon_file_receiver_checkpoint_write_failures',
    kind: 'counter',
    unit: '{write}',
    description:
      'Writes of checkpoint_file that failed (the error is logged and the receiver reports recoverable_error until a write succeeds); a restart resumes from the last write that succeeded.',
  },
});
