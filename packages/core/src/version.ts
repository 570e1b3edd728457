import { createRequire } from 'node:module';

/**
 * netmon's version. Every package carries the same one (lerna, fixed mode), so core's package.json
 * speaks for all; components that report it (user agents, heartbeats, OTLP scopes) read it here.
 */
export const NETMON_VERSION: string = (
  createRequire(import.meta.url)('../package.json') as { version: string }
).version;
