// A deliberately slow exporter behind a receiver that cannot pause: the receiver queue must drop and
// count what does not fit, /status must show it, and memory must stay bounded however long it runs.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defaultRegistry } from '@netmon/agent';
import { defineExporter, loadConfig, Service, silentLogger } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { freePort, ROOT, withTmpDir } from './harness/agent.js';

// A real full collection, so heap figures measure what is retained, not garbage not yet collected.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

const slowExporter = defineExporter({
  kind: 'exporter',
  type: 'slow',
  stability: 'development',
  description: 'test exporter that takes delay_ms per batch',
  signals: ['flows'],
  config: z.strictObject({ delay_ms: z.number().default(50) }),
  create: (_s, c) => ({ export: () => sleep(c.delay_ms) }),
});

interface StatusDoc {
  ready: boolean;
  healthy: boolean;
  components: { kind: string; id: string; status: string; items: Record<string, number> }[];
  queues: {
    pipeline: string;
    receiver: string;
    capacity: number;
    depth: number;
    dropped_batches: number;
    dropped_items: number;
  }[];
}

describe('overload', () => {
  it('a slow exporter makes the receiver queue drop, counted in /status, while memory stays bounded', async () => {
    await withTmpDir(async (dir) => {
      const port = await freePort();
      const file = path.join(dir, 'overload.yaml');
      await writeFile(
        file,
        `receivers:
  file: { path: ${JSON.stringify(SAMPLE)}, loop: true, pace: none, backpressure: false, batch_size: 64 }
exporters:
  slow: { delay_ms: 20 }
extensions:
  health_check: { endpoint: 127.0.0.1:${port} }
service:
  extensions: [health_check]
  pipelines:
    flows: { receivers: [file], exporters: [slow], queue: { size: 8 } }
`,
      );
      const registry = defaultRegistry().register(slowExporter);
      const service = await Service.build(await loadConfig([file], registry), { logger: silentLogger() });
      await service.start();
      const status = async () => (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as StatusDoc;
      try {
        await sleep(1000);
        gc();
        const heapEarly = process.memoryUsage().heapUsed;
        const early = await status();
        await sleep(3000);
        gc();
        const heapLate = process.memoryUsage().heapUsed;
        const late = await status();

        const [q] = late.queues;
        expect(q).toMatchObject({ pipeline: 'flows', receiver: 'file', capacity: 8 });
        expect(q.depth).toBeLessThanOrEqual(8);
        expect(q.dropped_batches).toBeGreaterThan(early.queues[0].dropped_batches);
        expect(q.dropped_items).toBeGreaterThan(1000);
        const receiver = late.components.find((c) => c.kind === 'receiver');
        const exporter = late.components.find((c) => c.kind === 'exporter');
        expect(receiver?.items.dropped).toBe(q.dropped_items);
        // Everything produced was either dropped at the queue, delivered, in flight or still queued.
        const inQueue =
          (receiver?.items.out ?? 0) - (receiver?.items.dropped ?? 0) - (exporter?.items.in ?? 0);
        expect(inQueue).toBeGreaterThanOrEqual(0);
        expect(inQueue).toBeLessThanOrEqual(9 * 64);
        // Dropping, not buffering: the retained heap does not grow with the flood.
        expect(heapLate - heapEarly).toBeLessThan(8 * 1024 * 1024);
        expect(late.ready).toBe(true);
        expect(late.healthy).toBe(true);
      } finally {
        await service.shutdown(2000);
      }
    });
  });
});
