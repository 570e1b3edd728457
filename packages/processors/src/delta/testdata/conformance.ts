import { FlowBatch, FlowFlags } from '@netmon/core';
import type { ConformanceOptions } from '@netmon/core/testkit';

/** delta takes cumulative counters: a first conntrack dump of one flow. */
export const conformance: ConformanceOptions = {
  sample: () => {
    const t = Date.parse('2026-01-01T00:00:00Z');
    const b = FlowBatch.from(
      [
        {
          timeStart: 0,
          timeEnd: t,
          protocol: 6,
          srcIp: '10.0.0.1',
          srcPort: 1,
          dstIp: '10.96.0.10',
          dstPort: 443,
          txBytes: 100,
          rxBytes: 1000,
          txPackets: 1,
          rxPackets: 2,
          flags: FlowFlags.InitiatorKnown,
        },
      ],
      'cumulative',
    );
    b.snapshot = true;
    b.origin = 'conntrack';
    return b;
  },
};
