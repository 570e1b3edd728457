import type { ConformanceOptions } from '@netmon/core/testkit';

/** Any free loopback port. */
export const conformance: ConformanceOptions = { config: { endpoint: '127.0.0.1:0' } };
