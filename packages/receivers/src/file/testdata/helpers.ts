// Test support shared by the file receiver's tests: settings that record what the receiver logs and
// which self-metrics it reports.
import type { ComponentSettings } from '@netmon/core';
import { type LogEntry, recordingLogger, recordingMeter, testSettings } from '@netmon/core/testkit';

/** Settings whose logger records entries and whose meter hands out its observable callbacks. */
export function recordingSettings(configDir: string) {
  const { logger, logs } = recordingLogger();
  const meter = recordingMeter();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'file', { configDir }),
    logger,
    meter: meter.meter,
  };
  return { settings, logs, meter };
}

/** Everything a log entry says, message and fields, as one string to search. */
export const logText = (l: LogEntry) => `${l.msg} ${JSON.stringify(l.fields)}`;
