export type { FileReceiverConfig } from './file/config.js';
export { fileReceiverFactory } from './file/factory.js';
export { FileReceiver } from './file/receiver.js';
