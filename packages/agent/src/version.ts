export { NETMON_VERSION as VERSION } from '@netmon/core';
