// The file exporter's self-metrics, declared apart from the implementation so the factory can list them
// without loading it. The framework counts the records of every batch (netmon_component_items: a batch whose
// write failed is a failure, and nothing of it stays in the file); these count what it cannot see.
import { defineMetrics } from '@netmon/core';

export const FILE_EXPORTER_METRICS = defineMetrics({
  rotations: {
    name: 'netmon_file_exporter_rotations',
    kind: 'counter',
    unit: '{rotation}',
    description: 'Times the file was renamed to path.1 and a new one started (rotation by max_megabytes).',
  },
  deleted: {
    name: 'netmon_file_exporter_deleted_bytes',
    kind: 'counter',
    unit: 'By',
    description:
      'Bytes of rotated files deleted to keep max_files: the oldest (path.N, N = max_files), replaced by a rotation. Records written earlier, dropped by retention.',
  },
  partialLines: {
    name: 'netmon_file_exporter_partial_lines',
    kind: 'counter',
    unit: '{line}',
    description:
      'Partial records found at the end of the file when opening it (a crash mid-write, or a failed write that could not be undone), ended with a newline so the next record starts on a line of its own.',
  },
});
