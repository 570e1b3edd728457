import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defineMetrics, type Factory } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { defaultRegistry } from '../components.js';
import { readmePath, renderMetrics, renderOperations, renderReadme } from './component-docs.js';

const ROOT = path.resolve(import.meta.dirname, '../../../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

describe('generated README blocks (run `npm run docs` after changing a factory or its metrics)', () => {
  for (const f of defaultRegistry().all()) {
    it(`${readmePath(f)}: status header and self-metrics are what the factory declares`, () => {
      const text = read(readmePath(f));
      expect(text).toBe(renderReadme(f, text));
    });
  }

  it('docs/operations.md: the framework’s self-metrics are what the core declares', () => {
    const text = read('docs/operations.md');
    expect(text).toBe(renderOperations(text));
  });

  it('every declared metric is netmon_… and lower_snake_case, and one name means one thing', () => {
    const seen = new Map<string, string>();
    for (const f of defaultRegistry().all()) {
      for (const m of Object.values(f.metrics ?? {})) {
        expect(m.name).toMatch(/^netmon_[a-z0-9_]+$/);
        const was = seen.get(m.name);
        if (was !== undefined) expect(m.description, `${m.name} declared twice differently`).toBe(was);
        seen.set(m.name, m.description);
      }
    }
  });

  it('a stale block or a README without markers fails', () => {
    const f = defaultRegistry().all()[0] as Factory;
    const text = read(readmePath(f));
    expect(renderReadme({ ...f, stability: 'deprecated' } as Factory, text)).not.toBe(text);
    expect(() => renderReadme(f, '# no markers\n')).toThrow(/lacks the markers/);
    expect(
      renderMetrics(defineMetrics({ x: { name: 'netmon_x', kind: 'gauge', description: 'a | b' } })),
    ).toContain('| `netmon_x` | gauge |  |  | a \\| b |');
  });
});
