import { describe, expect, it } from 'vitest';
import { FlowBatch } from './batch/flow-batch.js';
import { processorFromFunction, toPluginDefinition } from './plugin.js';
import { describeConformance, testSettings } from './testkit/index.js';

const doubler = processorFromFunction(
  'double_tx',
  {
    mutates: true,
    process(batch, ctx) {
      const b = batch as FlowBatch;
      const factor = Number(ctx.options.factor ?? 2);
      for (let i = 0; i < b.length; i++) b.txBytes[i] *= factor;
      return b;
    },
  },
  { description: 'multiplies tx bytes, for tests' },
);

describeConformance(doubler, { config: { options: { factor: 3 } } });

describe('processorFromFunction', () => {
  it('turns a function into a processor with its own type and options', async () => {
    const p = await doubler.create(
      testSettings('processor', 'double_tx'),
      doubler.config.parse({ options: { factor: 3 } }),
      'flows',
    );
    const t = Date.parse('2026-01-01T00:00:00Z');
    const out = (await p.process(
      FlowBatch.from([
        { timeStart: t, timeEnd: t, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.2', txBytes: 5 },
      ]),
    )) as FlowBatch;
    expect(out.txBytes[0]).toBe(15);
    expect(p.mutates).toBe(true);
  });

  it('rejects what a plugin module must not default-export', () => {
    expect(() => toPluginDefinition({ nope: 1 }, 'plugin module "x"')).toThrow(
      'plugin module "x" must default-export a function (batch, ctx) => batch, or an object with a process function',
    );
    expect(toPluginDefinition((b: unknown) => b, 'f').process).toBeTypeOf('function');
  });
});
