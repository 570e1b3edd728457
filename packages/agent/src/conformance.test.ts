// Every component this build registers passes the conformance suite: by construction, from the registry,
// not from a hand-kept list. A component whose defaults cannot run here keeps what it needs in its folder,
// `testdata/conformance.ts` (a required path, an extension, a port), or names the test that runs it where
// it can (a kernel table, as root).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type ConformanceOptions, describeConformance } from '@netmon/core/testkit';
import { describe, expect, it } from 'vitest';
import { defaultRegistry } from './components.js';
import { readmePath } from './tools/component-docs.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');

for (const factory of defaultRegistry().all()) {
  const file = path.join(ROOT, path.dirname(readmePath(factory)), 'testdata', 'conformance.ts');
  const options: ConformanceOptions | { elsewhere: string } = existsSync(file)
    ? (await import(file)).conformance
    : {};
  if ('elsewhere' in options) {
    describe(`${factory.kind} ${factory.type}: conformance`, () => {
      it(`runs in ${options.elsewhere}`, () => {
        const text = readFileSync(path.join(ROOT, options.elsewhere), 'utf8');
        expect(text).toMatch(/describeConformance\(/);
        expect(text).toContain(factory.type);
      });
    });
  } else {
    describeConformance(factory, options);
  }
}
