import { type DestinationStream, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import type { LogLevel } from '../config/resolve.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: LogLevel;
  /** Human-readable lines instead of JSON; default: when stderr is a terminal. */
  pretty?: boolean;
  /** Where logs go; default stderr, so stdout stays free for the debug exporter's summaries. */
  destination?: DestinationStream;
}

/** The process logger: structured JSON (one object per line) unless a person is watching a terminal. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const usePretty = opts.pretty ?? process.stderr.isTTY === true;
  const destination =
    opts.destination ??
    (usePretty
      ? pretty({
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
