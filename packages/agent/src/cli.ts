#!/usr/bin/env node
// The `netmon` command. Everything is in program.ts so tests can drive the same program in-process.
import { buildProgram, commandLine } from './program.js';

// zxporter-netmon's single-dash flags, and its container args with no command (`-collector-mode=…`).
const program = buildProgram();
const args = commandLine(program, process.argv.slice(2));
// `netmon components | head`: a reader that stops early is not an error. A running agent whose stdout goes
// away (its reader restarted) keeps running: only the debug exporter's summaries are lost, and it says so.
const command = args.find((a) => !a.startsWith('-'));
let stdoutGone = false;
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  if (command !== 'run') process.exit(0);
  if (!stdoutGone) {
    stdoutGone = true;
    process.stderr.write(
      `${JSON.stringify({ level: 40, time: new Date().toISOString(), service: 'netmon', msg: 'stdout was closed (EPIPE): what the debug exporter writes there is lost from now on; the agent keeps running' })}\n`,
    );
  }
});

program.parseAsync(args, { from: 'user' }).catch((err: unknown) => {
  process.stderr.write(`netmon: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
