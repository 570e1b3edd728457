// npm run docs: rewrites docs/configuration-reference.md from the component schemas.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultRegistry } from '../components.js';
import { renderConfigReference } from './config-reference.js';

const target = path.resolve(import.meta.dirname, '../../../../docs/configuration-reference.md');
writeFileSync(target, renderConfigReference(defaultRegistry()));
process.stdout.write(`wrote ${path.relative(process.cwd(), target)}\n`);
