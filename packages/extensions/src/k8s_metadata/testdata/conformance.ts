import type { ConformanceOptions } from '@netmon/core/testkit';

/** No cluster to reach from a unit test: standalone (the snapshot and API variants have tests of their own). */
export const conformance: ConformanceOptions = { config: { standalone: true } };
