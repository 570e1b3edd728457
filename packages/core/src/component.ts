// Component contracts. A component is made by a factory from a validated config; the framework owns its
// lifecycle, its status and the counting of items at its edges.

import type { Meter } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { DnsBatch } from './batch/dns-batch.js';
import type { FlowBatch } from './batch/flow-batch.js';
import type { Claim } from './config/claims.js';
import type { ComponentKind, ComponentState, StatusReporter } from './status.js';
import type { MetricDeclarations } from './telemetry/declare.js';
import type { CollectedMetrics } from './telemetry/self-metrics.js';

export type { ComponentKind } from './status.js';

/** How far a component can be trusted, as in the OpenTelemetry Collector. */
export type Stability = 'development' | 'alpha' | 'beta' | 'stable' | 'deprecated';

export const SIGNALS = ['flows', 'dns'] as const;
export type Signal = (typeof SIGNALS)[number];

export type Batch = FlowBatch | DnsBatch;

export interface Lifecycle {
  /** Returns quickly; long work goes to the background. A rejection aborts the agent's start. */
  start?(): void | Promise<void>;
  /**
   * Stops background work and flushes what the component holds. Safe without start and when called twice.
   */
  shutdown?(): void | Promise<void>;
}

/** Where a receiver hands its batches. */
export interface BatchSink<B extends Batch = Batch> {
  /** Takes ownership of the batch; never blocks. Overflow is dropped and counted by the framework. */
  consume(batch: B): void;
  /**
   * Resolves when every queue behind this receiver has room. Sources that can wait (a file) await it to
   * lose nothing; kernel sources cannot pause and do not call it.
   */
  ready(): Promise<void>;
}

export type Receiver = Lifecycle;

export interface Processor<B extends Batch = Batch> extends Lifecycle {
  /**
   * True when `process` changes the batch it is given (attributes, counters, rows). The framework then
   * hands it a private copy when the batch is shared; otherwise the batch is read-only.
   */
  readonly mutates?: boolean;
  /**
   * Returns the batch to pass on (the same one, a new one, or fewer rows), or null to pass nothing on: what
   * is left out counts as filtered, by design. Returning undefined (no return at all) drops the batch and
   * counts it as dropped, data lost: the usual sign of a plugin that forgot its `return`.
   */
  process(batch: B): B | null | undefined | Promise<B | null | undefined>;
}

export interface Exporter<B extends Batch = Batch> extends Lifecycle {
  /** Delivers a read-only batch. A rejection counts the batch as failed and reports a recoverable error. */
  export(batch: B): void | Promise<void>;
}

export type Extension = Lifecycle;

declare const extensionInterface: unique symbol;

/**
 * An extension's type name that carries the interface it offers: `extensionKey<K8sMetadata>('k8s_metadata')`.
 * Each extension's contract module exports one; factories list it in `extensions`/`optionalExtensions`, and
 * `getExtension` hands the running instance back with that interface, so no consumer casts or duck-types.
 * It is the plain string at run time (a Map key, a config name).
 */
export type ExtensionKey<T extends Extension = Extension> = string & { readonly [extensionInterface]?: T };

export function extensionKey<T extends Extension>(type: string): ExtensionKey<T> {
  return type as ExtensionKey<T>;
}

/** The enabled extension `key` names, with its interface; undefined when it is not enabled. */
export function getExtension<T extends Extension>(
  settings: Pick<ComponentSettings, 'extensions'>,
  key: ExtensionKey<T>,
): T | undefined {
  // The one place the interface is asserted: the registry holds one factory per type, whose contract
  // module declares the key with the interface its instances implement.
  return settings.extensions.get(key) as T | undefined;
}

/**
 * The extension `key` names, which the component lists in `extensions` (so configuration fails without it):
 * always there once created.
 */
export function requireExtension<T extends Extension>(
  settings: Pick<ComponentSettings, 'extensions' | 'id'>,
  key: ExtensionKey<T>,
): T {
  const ext = getExtension(settings, key);
  if (!ext)
    throw new Error(`${settings.id} needs the ${key} extension, which is not enabled (service::extensions)`);
  return ext;
}

/** The process-wide state extensions such as health_check read. */
export interface Host {
  /** Every component instance's status and counters. */
  components(): readonly ComponentState[];
  /** Bounded queues behind receivers, per pipeline. */
  queues(): readonly QueueState[];
  /** Where the whole service is in its lifecycle. */
  phase(): ServicePhase;
  /** ms since the Unix epoch when the service started. */
  startedAt(): number;
  /**
   * Collects the agent's self-metrics now: the framework's (items per component, queues, process) and
   * every instrument components made on `settings.meter`. Undefined when the agent has no reader for
   * them (an embedded Service); absent in hosts made before it existed.
   */
  selfMetrics?(): Promise<CollectedMetrics | undefined>;
}

export type ServicePhase = 'starting' | 'running' | 'stopping' | 'stopped';

export interface QueueState {
  pipeline: string;
  receiver: string;
  capacity: number;
  depth: number;
  droppedBatches: number;
  droppedItems: number;
}

export interface ComponentSettings {
  /** `type` or `type/name`, as written in the config. */
  id: string;
  kind: ComponentKind;
  /**
   * The signals this instance serves. Receivers and exporters: one instance per component id serves every
   * pipeline and signal that lists it, each batch being a FlowBatch or a DnsBatch. Processors: the signal
   * of their pipeline (they are made once per pipeline). Extensions: none.
   */
  signals: readonly Signal[];
  /** A child logger bound to this component's id. */
  logger: Logger;
  /** A meter scoped to this component, for its own self-metrics. */
  meter: Meter;
  /** Runtime status changes (the framework reports starting/ok/stopping/stopped itself). */
  status: StatusReporter;
  /** Directory of the config file that defined the component: relative paths resolve against it. */
  configDir: string;
  /** The enabled extensions named in the factory's `extensions` and `optionalExtensions`, by type. */
  extensions: ReadonlyMap<string, Extension>;
  host: Host;
}

interface FactoryBase<C> {
  /** lower_snake_case, unique per kind. */
  readonly type: string;
  readonly stability: Stability;
  /** One line for `netmon components` and the configuration reference. */
  readonly description: string;
  /** The config schema with every default; `{}` must parse. Unknown keys must be rejected (strictObject). */
  readonly config: z.ZodType<C>;
  /** Extensions this component needs (their contract modules' keys); configuration fails when one is not enabled. */
  readonly extensions?: readonly ExtensionKey[];
  /** Extensions this component uses when they are enabled and does without otherwise. */
  readonly optionalExtensions?: readonly ExtensionKey[];
  /**
   * The self-metrics its instances make (with `observeMetrics`), for the generated README table and the
   * conformance check that nothing undeclared is made.
   */
  readonly metrics?: MetricDeclarations;
  /**
   * Checks beyond the schema that need I/O (a module loads, a device exists), run by `loadConfig` and
   * `netmon validate` before anything starts — side by side with the other components' hooks, even when
   * other parts of the config are invalid, within `service::start_timeout`: a hook must not depend on
   * another. Cross-field rules belong in the schema (`superRefine`).
   */
  validate?(config: C, ctx: ValidateContext): ConfigIssue[] | Promise<ConfigIssue[]>;
  /**
   * What an instance takes from the host when it runs — the address it listens on, the files it reads or
   * writes (absolute, resolved against `configDir`) — so that configuration refuses two components that
   * would collide (one port, or an exporter writing the file a receiver reads), naming both.
   */
  claims?(config: C, ctx: { configDir: string }): Claim[];
}

/** What a `validate` hook is told. */
export interface ValidateContext {
  /** The folder of the config file that defined the component: relative paths resolve against it. */
  configDir: string;
  /**
   * service::start_timeout: the hook's deadline. One that loads code (a plugin) may bound the load itself,
   * so that its problem names what it was loading rather than only that time ran out. The config loader
   * always gives it; a test calling a hook directly may leave it out.
   */
  startTimeoutMs?: number;
  /**
   * The component may not run on every node this config is for (a collection mode `auto` picks per node):
   * check what is wrong everywhere (a path that does not exist), and leave what depends on the node (the
   * file system a path is on) to its start, where it is said and another choice can be made.
   */
  tentative?: boolean;
}

/** A problem found by a factory's `validate`: `key` is relative to the component (`module`, `a::b`). */
export interface ConfigIssue {
  key?: string;
  message: string;
}

// `create` may return a promise: a factory's module imports only its config schema, and `create` loads
// the implementation (and its heavy dependencies: the Kubernetes client, gRPC) when a config uses it.

export interface ReceiverFactory<C = unknown> extends FactoryBase<C> {
  readonly kind: 'receiver';
  readonly signals: readonly Signal[];
  /** One instance per receiver id; `next` takes the batches of every signal in `settings.signals`. */
  create(settings: ComponentSettings, config: C, next: BatchSink): Receiver | Promise<Receiver>;
}

export interface ProcessorFactory<C = unknown> extends FactoryBase<C> {
  readonly kind: 'processor';
  readonly signals: readonly Signal[];
  create(settings: ComponentSettings, config: C, signal: Signal): Processor | Promise<Processor>;
}

export interface ExporterFactory<C = unknown> extends FactoryBase<C> {
  readonly kind: 'exporter';
  readonly signals: readonly Signal[];
  /** One instance per exporter id, fed by every pipeline that lists it, of each signal in `settings.signals`. */
  create(settings: ComponentSettings, config: C): Exporter | Promise<Exporter>;
}

export interface ExtensionFactory<C = unknown> extends FactoryBase<C> {
  readonly kind: 'extension';
  create(settings: ComponentSettings, config: C): Extension | Promise<Extension>;
}

export type Factory = ReceiverFactory | ProcessorFactory | ExporterFactory | ExtensionFactory;

/** Identity helpers that keep the config type flowing from schema to `create`. */
export const defineReceiver = <C>(f: ReceiverFactory<C>): ReceiverFactory<C> => f;
export const defineProcessor = <C>(f: ProcessorFactory<C>): ProcessorFactory<C> => f;
export const defineExporter = <C>(f: ExporterFactory<C>): ExporterFactory<C> => f;
export const defineExtension = <C>(f: ExtensionFactory<C>): ExtensionFactory<C> => f;
