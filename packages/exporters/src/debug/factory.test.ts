// The factory module holds the config only; the implementation loads in `create`.
import { testSettings } from '@netmon/core/testkit';
import { describe, expect, it, vi } from 'vitest';

const loaded = vi.hoisted(() => ({ exporter: 0 }));
vi.mock('./exporter.js', async (original) => {
  loaded.exporter++;
  return original();
});

describe('debug exporter factory', () => {
  it('loads the implementation only in create', async () => {
    const { debugExporterFactory } = await import('./factory.js');
    const config = debugExporterFactory.config.parse({});
    expect(loaded.exporter).toBe(0);
    const e = await debugExporterFactory.create(testSettings('exporter', 'debug'), config);
    expect(loaded.exporter).toBe(1);
    await e.shutdown?.();
  });
});
