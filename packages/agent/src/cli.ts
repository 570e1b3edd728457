#!/usr/bin/env node
// The `netmon` command. Everything is in program.ts so tests can drive the same program in-process.
import { buildProgram } from './program.js';

// `netmon components | head`: a reader that stops early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`netmon: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
