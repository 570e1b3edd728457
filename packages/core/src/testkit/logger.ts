// A logger for unit tests that records what a component logs, in order, instead of writing it.
import type { ComponentSettings } from '../component.js';

export interface LogEntry {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/**
 * A logger with pino's call shapes (`log(msg)`, `log(fields, msg)`) whose entries land in `logs`; its
 * children log into the same list.
 */
export function recordingLogger(): { logger: ComponentSettings['logger']; logs: LogEntry[] } {
  const logs: LogEntry[] = [];
  const log = (level: string) => (fieldsOrMsg: unknown, msg?: string) => {
    logs.push(
      typeof fieldsOrMsg === 'string'
        ? { level, msg: fieldsOrMsg, fields: {} }
        : { level, msg: msg ?? '', fields: (fieldsOrMsg ?? {}) as Record<string, unknown> },
    );
  };
  const logger = {
    trace: log('trace'),
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    fatal: log('fatal'),
    child: () => logger,
  };
  return { logger: logger as unknown as ComponentSettings['logger'], logs };
}
