// classify's self-metrics, declared once: the processor observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

export const CLASSIFY_METRICS = defineMetrics({
  duplicates: {
    name: 'netmon_classify_duplicates_dropped',
    kind: 'counter',
    unit: '{flow}',
    description:
      'Flows dropped because another node reports the same connection: the node of its initiator, or the lower-addressed end’s when the initiator is not known.',
  },
  unlocated: {
    name: 'netmon_classify_unlocated',
    kind: 'counter',
    unit: '{flow}',
    description: 'Flows between two cluster ends classed same_zone because a zone was unknown.',
  },
});
