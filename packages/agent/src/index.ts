export { buildProgram } from './program.js';
export { defaultRegistry } from './components.js';
export { healthCheckFactory, type HealthCheck } from './health_check/factory.js';
export { liveness, readiness, statusDocument } from './health_check/health.js';
export { runAgent, type RunOptions } from './run.js';
export { VERSION } from './version.js';
