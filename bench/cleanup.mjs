// What the benches that change the machine share: synchronous undo steps (they must also run from a
// signal handler), run on success, on an error, and on Ctrl-C or SIGTERM; and a command whose failure
// says what failed.
import { execFileSync } from 'node:child_process';
import os from 'node:os';

const steps = [];
let cleaned = false;

/** Registers a synchronous undo step; steps run last-registered first. Returns a function that runs it now. */
export function onCleanup(step) {
  const entry = { step, done: false };
  steps.push(entry);
  return () => {
    if (entry.done) return;
    entry.done = true;
    step();
  };
}

export function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const entry of steps.reverse()) {
    if (entry.done) continue;
    entry.done = true;
    try {
      entry.step();
    } catch (err) {
      console.error(`cleanup: ${err.message}`);
    }
  }
}

let installed = false;

/** Ctrl-C, SIGTERM and SIGHUP clean up and exit; so does a normal exit that skipped it. Once per process. */
export function installSignalHandlers() {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      console.error(`\n${signal}: cleaning up`);
      cleanup();
      process.exit(128 + os.constants.signals[signal]);
    });
  }
  process.on('exit', cleanup);
}

/** Runs a command to its end and returns its stdout; throws with its stderr when it fails. */
export function sh(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.toString().trim() || err.message}`);
  }
}
