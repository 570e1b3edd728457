export { defaultRegistry } from './components.js';
export { type HealthCheck, healthCheckFactory } from './health_check/factory.js';
export { liveness, readiness, statusDocument } from './health_check/health.js';
export { buildProgram } from './program.js';
export { type RunOptions, runAgent } from './run.js';
export { VERSION } from './version.js';
