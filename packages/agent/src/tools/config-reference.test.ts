import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { defaultRegistry } from '../components.js';
import { renderConfigReference } from './config-reference.js';

it('docs/configuration-reference.md is what the schemas generate (run `npm run docs` after changing a schema)', () => {
  const committed = readFileSync(
    path.resolve(import.meta.dirname, '../../../../docs/configuration-reference.md'),
    'utf8',
  );
  expect(committed).toBe(renderConfigReference(defaultRegistry()));
});

it('the reference lists every component with its keys and defaults', () => {
  const text = renderConfigReference(defaultRegistry());
  for (const f of defaultRegistry().all()) expect(text).toContain(`### \`${f.type}\``);
  expect(text).toContain('| `endpoint` | string | `"127.0.0.1:8081"` |');
  expect(text).toContain('| `shutdown_timeout` | duration (100ms – 576h) | `"10s"` |');
  expect(text).toContain('| `module` | string | **required** |');
});
