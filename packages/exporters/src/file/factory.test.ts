// The factory module holds the config and its validation only; the implementation loads in `create`.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sampleFlows, testSettings } from '@netmon/core/testkit';
import { describe, expect, it, vi } from 'vitest';

const loaded = vi.hoisted(() => ({ exporter: 0 }));
vi.mock('./exporter.js', async (original) => {
  loaded.exporter++;
  return original();
});

describe('file exporter factory', () => {
  it('validates without the implementation, and loads it only in create', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'netmon-file-factory-'));
    try {
      const { fileExporterFactory } = await import('./factory.js');
      const config = fileExporterFactory.config.parse({ path: 'out/flows.jsonl' });
      expect(await fileExporterFactory.validate?.(config, { configDir: dir })).toEqual([]);
      expect(
        await fileExporterFactory.validate?.({ ...config, path: '/proc/x' }, { configDir: dir }),
      ).toEqual([
        {
          key: 'path',
          message:
            '/proc/x is under /proc, a kernel pseudo-filesystem where no file can be created; write to a real filesystem (e.g. /var/lib/netmon/flows.jsonl)',
        },
      ]);
      expect(loaded.exporter).toBe(0);
      const e = await fileExporterFactory.create(
        testSettings('exporter', 'file', { configDir: dir }),
        config,
      );
      expect(loaded.exporter).toBe(1);
      await e.start?.();
      const batch = sampleFlows().seal();
      await e.export(batch);
      await e.shutdown?.();
      expect((await readFile(join(dir, 'out/flows.jsonl'), 'utf8')).split('\n')).toHaveLength(
        batch.length + 1,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
