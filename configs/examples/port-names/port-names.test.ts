import { FlowBatch } from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import { pluginProcessorFactory } from '@netmon/processors';
import { expect, it } from 'vitest';

const configDir = import.meta.dirname;
const config = { module: './port-names.mjs', options: { names: { '8443': 'https-alt' } } };

describeConformance(pluginProcessorFactory, { config, configDir });

it('labels flows by destination port, with options overriding the table', async () => {
  const processor = await pluginProcessorFactory.create(
    testSettings('processor', 'plugin/ports', { configDir }),
    pluginProcessorFactory.config.parse(config),
    'flows',
  );
  await processor.start?.();
  const t = Date.parse('2026-01-01T00:00:00Z');
  const flow = { timeStart: t, timeEnd: t + 1000, srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 40000 };
  const batch = FlowBatch.from([
    { ...flow, protocol: 6, dstPort: 443 },
    { ...flow, protocol: 6, dstPort: 8443 },
    { ...flow, protocol: 17, dstPort: 53 },
    { ...flow, protocol: 6, dstPort: 12345 },
    { ...flow, protocol: 1, dstPort: 443 },
  ]);
  const out = (await processor.process(batch)) as FlowBatch;
  expect([...out].map((f) => f.get('app.protocol'))).toEqual([
    'https',
    'https-alt',
    'dns',
    undefined,
    undefined,
  ]);
  await processor.shutdown?.();
});

it('refuses to change a read-only batch, as it must when shared', async () => {
  const processor = await pluginProcessorFactory.create(
    testSettings('processor', 'plugin/ports', { configDir }),
    pluginProcessorFactory.config.parse(config),
    'flows',
  );
  await processor.start?.();
  expect(processor.mutates).toBe(true);
  const t = Date.parse('2026-01-01T00:00:00Z');
  const sealed = FlowBatch.from([
    { timeStart: t, timeEnd: t, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.2', dstPort: 443 },
  ]).seal();
  expect(() => processor.process(sealed)).toThrow(/read-only/);
});
