export type { ConntrackReceiverConfig } from './conntrack/config.js';
export { conntrackReceiverFactory } from './conntrack/factory.js';
export { ConntrackReceiver, conntrackBatch } from './conntrack/receiver.js';
export type { FileReceiverConfig } from './file/config.js';
export { fileReceiverFactory } from './file/factory.js';
export { FileReceiver } from './file/receiver.js';
