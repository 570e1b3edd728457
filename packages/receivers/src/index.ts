// The factories and config types: each factory loads its receiver (the conntrack one, the native addon) in
// `create`, when a config uses it.
export type { CiliumReceiverConfig } from './cilium/config.js';
export { ciliumReceiverFactory } from './cilium/factory.js';
export type { CiliumReceiver } from './cilium/receiver.js';
export type { ConntrackReceiverConfig } from './conntrack/config.js';
export { conntrackReceiverFactory } from './conntrack/factory.js';
export type { ConntrackReceiver } from './conntrack/receiver.js';
export type { DnsReceiverConfig } from './dns/config.js';
export { dnsReceiverFactory } from './dns/factory.js';
export type { DnsReceiver } from './dns/receiver.js';
export type { EbpfReceiverConfig } from './ebpf/config.js';
export { ebpfReceiverFactory } from './ebpf/factory.js';
export type { EbpfReceiver } from './ebpf/receiver.js';
export type { FileReceiverConfig } from './file/config.js';
export { fileReceiverFactory } from './file/factory.js';
export type { FileReceiver } from './file/receiver.js';
export type { CollectionMode, FlowsReceiverConfig } from './flows/config.js';
export { flowsReceiverFactory } from './flows/factory.js';
export type { FlowsReceiver } from './flows/receiver.js';
