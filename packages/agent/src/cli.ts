#!/usr/bin/env node
// The `netmon` command. Everything is in program.ts so tests can drive the same program in-process.
import { buildProgram } from './program.js';

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`netmon: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
