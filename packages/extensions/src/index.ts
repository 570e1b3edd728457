// Extensions: process-wide services components share (the Kubernetes metadata cache, the health
// endpoints, the IP → domain cache). Each folder's contract.ts is what other components import. Nothing
// here loads an extension's heavy dependencies (the Kubernetes client): the factories load the
// implementation when a config uses it; code that makes the k8s_metadata extension itself imports
// `@netmon/extensions/k8s_metadata`.
export { DnsNameCache } from './dns_cache/cache.js';
export { type DnsCacheConfig, dnsCacheConfig } from './dns_cache/config.js';
export * from './dns_cache/contract.js';
export { createDnsCache, type DnsCacheExtension, dnsCacheFactory } from './dns_cache/factory.js';
export * from './health_check/contract.js';
export { healthCheckFactory } from './health_check/factory.js';
export { liveness, queueDocument, readiness, statusDocument } from './health_check/health.js';
export { type K8sMetadataConfig, k8sMetadataConfig } from './k8s_metadata/config.js';
export * from './k8s_metadata/contract.js';
export { k8sMetadataExtensionFactory } from './k8s_metadata/factory.js';
export { resolveBatch } from './k8s_metadata/resolve.js';
export { MetadataStore, type NodeRecord, type PodRecord } from './k8s_metadata/store.js';
