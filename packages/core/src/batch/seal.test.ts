import { describe, expect, it } from 'vitest';
import { DnsBatch } from './dns-batch.js';
import { FlowBatch } from './flow-batch.js';
import { UNSEAL } from './unseal.js';

const flow = { timeStart: 0, timeEnd: 1, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.2' };
const lookup = { time: 0, clientIp: '10.0.0.1', question: 'example.com', answers: [] };

describe.each([
  ['FlowBatch', () => new FlowBatch(), (b: FlowBatch | DnsBatch) => (b as FlowBatch).push(flow)],
  ['DnsBatch', () => new DnsBatch(), (b: FlowBatch | DnsBatch) => (b as DnsBatch).push(lookup)],
] as const)('%s seal', (name, make, push) => {
  it('refuses writes once sealed, naming the batch and what a writer must declare', () => {
    const b = make();
    expect(b.readonly).toBe(false);
    expect(b.seal()).toBe(b);
    expect(b.readonly).toBe(true);
    expect(() => push(b)).toThrow(
      `${name} is read-only: a processor that changes batches must declare \`mutates: true\``,
    );
    expect(b.length).toBe(0);
  });

  it('the owning pipeline lifts the seal, and writes work again', () => {
    const b = make().seal();
    b[UNSEAL]();
    expect(b.readonly).toBe(false);
    expect(push(b)).toBe(0);
    expect(b.length).toBe(1);
  });
});
