export { defaultRegistry } from './components.js';
export { buildProgram } from './program.js';
export { type RunOptions, runAgent } from './run.js';
export { VERSION } from './version.js';
