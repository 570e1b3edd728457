// Test support shared by the file receiver's tests: settings that record what the receiver logs and
// which self-metrics it reports.
import type { ComponentSettings } from '@netmon/core';
import { recordingMeter, testSettings } from '@netmon/core/testkit';

export interface LogEntry {
  level: string;
  fields: Record<string, unknown>;
  msg: string;
}

/** Settings whose logger records entries and whose meter hands out its observable callbacks. */
export function recordingSettings(configDir: string) {
  const logs: LogEntry[] = [];
  const log =
    (level: string) =>
    (fields: Record<string, unknown>, msg = '') =>
      logs.push({ level, fields, msg });
  const logger = {
    trace: log('trace'),
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    fatal: log('fatal'),
    child: () => logger,
  };
  const meter = recordingMeter();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'file', { configDir }),
    logger: logger as unknown as ComponentSettings['logger'],
    meter: meter.meter,
  };
  return { settings, logs, meter };
}

/** Everything a log entry says, message and fields, as one string to search. */
export const logText = (l: LogEntry) => `${l.msg} ${JSON.stringify(l.fields)}`;
