// npm run docs: rewrites docs/configuration-reference.md from the component schemas, and the generated
// blocks of each component's README (status header, self-metrics) and of docs/operations.md (the
// framework's self-metrics) from the factories' declarations.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultRegistry } from '../components.js';
import { readmePath, renderOperations, renderReadme } from './component-docs.js';
import { renderConfigReference } from './config-reference.js';

const root = path.resolve(import.meta.dirname, '../../../..');
const write = (file: string, text: string) => {
  const target = path.join(root, file);
  if (readFileSync(target, 'utf8') === text) return;
  writeFileSync(target, text);
  process.stdout.write(`wrote ${file}\n`);
};
const registry = defaultRegistry();
writeFileSync(path.join(root, 'docs/configuration-reference.md'), renderConfigReference(registry));
process.stdout.write('wrote docs/configuration-reference.md\n');
for (const f of registry.all()) {
  const file = readmePath(f);
  write(file, renderReadme(f, readFileSync(path.join(root, file), 'utf8')));
}
write('docs/operations.md', renderOperations(readFileSync(path.join(root, 'docs/operations.md'), 'utf8')));
