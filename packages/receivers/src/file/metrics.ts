// The file receiver's self-metrics, declared once: the receiver observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

export const FILE_RECEIVER_METRICS = defineMetrics({
  malformed: {
    name: 'netmon_file_receiver_malformed_records',
    kind: 'counter',
    unit: '{record}',
    description: 'Lines of the replayed file that were not valid flow records and were skipped.',
  },
});
