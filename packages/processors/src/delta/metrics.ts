// delta's self-metrics, declared once: the processor observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

const ORIGIN = { origin: 'the receiver whose flows these are (each has its own baselines)' };

export const DELTA_METRICS = defineMetrics({
  tracked: {
    name: 'netmon_delta_flows_tracked',
    kind: 'gauge',
    unit: '{flow}',
    description: 'Flows the delta processor holds a baseline for (live, and recently closed), per origin.',
    attributes: ORIGIN,
  },
  stateBytes: {
    name: 'netmon_delta_state_bytes',
    kind: 'gauge',
    unit: 'By',
    description: 'Memory of the delta processor’s baseline tables (typed arrays, with their spare capacity).',
  },
  vanished: {
    name: 'netmon_delta_flows_vanished',
    kind: 'counter',
    unit: '{flow}',
    description:
      'Flows that disappeared from a snapshot without a DESTROY event (events off or lost); what they sent since the previous reading was not reported.',
    attributes: ORIGIN,
  },
  resets: {
    name: 'netmon_delta_flows_reset',
    kind: 'counter',
    unit: '{flow}',
    description: 'Readings whose counters were below the baseline: the flow was counted again from zero.',
    attributes: ORIGIN,
  },
  preexisting: {
    name: 'netmon_delta_preexisting_closed',
    kind: 'counter',
    unit: '{flow}',
    description:
      'DESTROY events for flows older than the agent, before their origin had a first snapshot: dropped, as their counters include bytes from before the agent started.',
    attributes: ORIGIN,
  },
  rebaselined: {
    name: 'netmon_delta_flows_rebaselined',
    kind: 'counter',
    unit: '{flow}',
    description:
      'Flows whose first reading after a restart was taken as a new baseline (a DESTROY: dropped) because the saved state could not be trusted (a journal damaged, of an unknown version, of a newer or another state file, or unreadable; a state file damaged, unreadable or gone): what they sent since the last write before the restart was not reported, so that nothing is counted twice.',
    attributes: {
      ...ORIGIN,
      reason:
        'why the saved state was not trusted: journal_damaged, journal_version, journal_mismatch, journal_unreadable, state_file_damaged, state_file_unreadable, state_file_missing',
    },
  },
  failures: {
    name: 'netmon_delta_checkpoint_failures',
    kind: 'counter',
    unit: '{write}',
    description: 'Failed writes of the state file.',
  },
});
