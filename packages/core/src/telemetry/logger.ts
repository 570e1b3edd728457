import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from '../config/resolve.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: LogLevel;
  /** Human-readable lines instead of JSON; default: when stderr is a terminal and loadPrettyLogs() ran. */
  pretty?: boolean;
  /** Where logs go; default stderr, so stdout stays free for the debug exporter's summaries. */
  destination?: DestinationStream;
}

type PrettyFactory = typeof import('pino-pretty');
let prettyFactory: PrettyFactory | undefined;

/**
 * Loads the human-readable formatter (pino-pretty) when stderr is a terminal, or when `force`d. An agent
 * whose logs go to a file or a container runtime writes JSON and never loads it: every module loaded stays
 * in memory for the life of the process.
 */
export async function loadPrettyLogs(force = false): Promise<void> {
  if (prettyFactory === undefined && (force || process.stderr.isTTY === true)) {
    prettyFactory = (await import('pino-pretty')).default;
  }
}

/** The process logger: structured JSON (one object per line) unless a person is watching a terminal. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const usePretty = opts.pretty ?? (process.stderr.isTTY === true && prettyFactory !== undefined);
  if (usePretty && prettyFactory === undefined && opts.destination === undefined) {
    throw new Error('createLogger({ pretty: true }) needs `await loadPrettyLogs(true)` first');
  }
  const destination =
    opts.destination ??
    (usePretty && prettyFactory
      ? prettyFactory({
          destination: 2,
          colorize: true,
          sync: true,
          ignore: 'pid,hostname',
          translateTime: 'SYS:HH:MM:ss.l',
        })
      : pino.destination({ dest: 2, sync: true }));
  return pino({ level, base: { service: 'netmon' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A logger that discards everything: for tests and tools. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
