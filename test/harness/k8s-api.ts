// A Kubernetes API stand-in for tests and benchmarks: serves list and watch of pods, nodes, services and
// EndpointSlices to the real @kubernetes/client-node, on 127.0.0.1 only. Lists are consistent snapshots
// (paged with limit/continue like a real API server) streamed item by item, so fixture clusters of 100k
// pods cost no giant string; watches replay the events after their resourceVersion, then stay open and
// receive what tests add, modify and delete. Failure injection: expiry (410 Gone), dropped connections,
// 5xx answers.
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/** An API object as fixtures write it: kind and metadata, the rest free-form JSON. */
export interface K8sObject {
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface RecordedRequest {
  path: string;
  query: Record<string, string>;
  watch: boolean;
  /** The HTTP status answered (200 for a watch that opened, 0 for a request held unanswered). */
  status: number;
}

const RESOURCES: Record<string, { kind: string; apiVersion: string }> = {
  '/api/v1/pods': { kind: 'Pod', apiVersion: 'v1' },
  '/api/v1/nodes': { kind: 'Node', apiVersion: 'v1' },
  '/api/v1/services': { kind: 'Service', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
};
const PATH_OF_KIND = new Map(Object.entries(RESOURCES).map(([path, r]) => [r.kind, path]));

interface Watcher {
  path: string;
  match: (o: K8sObject) => boolean;
  res: ServerResponse;
}

const keyOf = (o: K8sObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** `a.b=c,d!=e` (field selectors) or `k=v,k2!=v2` (label selectors) as a predicate. */
function selector(text: string | undefined, read: (o: K8sObject, key: string) => unknown) {
  if (!text) return () => true;
  const terms = text.split(',').map((t) => {
    const m = /^([^!=]+)(==|!=|=)(.*)$/.exec(t.trim());
    if (!m) throw new Error(`unsupported selector term ${t}`);
    return { key: m[1], negate: m[2] === '!=', value: m[3] };
  });
  return (o: K8sObject) => terms.every((t) => (String(read(o, t.key) ?? '') === t.value) !== t.negate);
}
// biome-ignore lint/suspicious/noExplicitAny: walking a dotted path through API JSON.
const field = (o: K8sObject, path: string) => path.split('.').reduce<any>((v, k) => v?.[k], o);
const label = (o: K8sObject, key: string) => o.metadata.labels?.[key];

export class K8sApiStandIn {
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  private readonly objects = new Map<string, Map<string, K8sObject>>(
    Object.keys(RESOURCES).map((p) => [p, new Map()]),
  );
  private readonly history: {
    rv: number;
    path: string;
    type: EventType;
    object: K8sObject;
    old?: K8sObject;
  }[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly snapshots = new Map<string, { rv: number; items: K8sObject[] }>();
  private rv = 100;
  private continueTokens = 0;
  /** Watches from a resourceVersion below this one are answered 410 Gone. */
  private oldest = 100;
  private failures: { count: number; status: number } = { count: 0, status: 503 };
  private down = false;
  /** Requests received while stalled: held unanswered (an API server that accepts and never replies). */
  private readonly held = new Set<ServerResponse>();
  private stalled = false;
  private readonly server = createServer((req, res) => this.handle(req, res));

  /** Starts a stand-in on 127.0.0.1 at a free port. */
  static async start(): Promise<K8sApiStandIn> {
    const api = new K8sApiStandIn();
    await new Promise<void>((resolve) => api.server.listen(0, '127.0.0.1', resolve));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /**
   * A KubeConfig for this server. @kubernetes/client-node refuses a plain http:// server unless the cluster
   * entry sets skipTLSVerify ("HTTP protocol is not allowed when skipTLSVerify is not set or false").
   */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'stand-in', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'test' }],
      contexts: [{ name: 'stand-in', cluster: 'stand-in', user: 'test' }],
      currentContext: 'stand-in',
    });
    return kc;
  }

  /** Writes a kubeconfig file pointing here and returns its path. */
  async writeKubeconfig(file: string): Promise<string> {
    const doc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'stand-in', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'test', user: {} }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'test' } }],
      'current-context': 'stand-in',
    };
    await writeFile(file, JSON.stringify(doc, null, 2)); // JSON is YAML
    return file;
  }

  /** Adds objects (one or an array: bulk loads are cheap), each at a new resourceVersion. */
  add(objects: K8sObject | K8sObject[]): void {
    for (const o of Array.isArray(objects) ? objects : [objects]) this.write('ADDED', o);
  }

  /** Replaces objects (same kind, namespace and name) and tells the watches. */
  modify(objects: K8sObject | K8sObject[]): void {
    for (const o of Array.isArray(objects) ? objects : [objects]) this.write('MODIFIED', o);
  }

  delete(objects: K8sObject | K8sObject[]): void {
    for (const o of Array.isArray(objects) ? objects : [objects]) this.write('DELETED', o);
  }

  /** Compacts history: open watches get ERROR 410 Expired and end; older resourceVersions get 410. */
  expire(): void {
    this.oldest = this.rv;
    this.history.length = 0;
    this.snapshots.clear();
    const expired = { type: 'ERROR', object: status(410, 'Expired', 'too old resource version') };
    for (const w of this.watchers) w.res.end(`${JSON.stringify(expired)}\n`);
    this.watchers.clear();
  }

  /** Destroys the sockets of open watches (a crashed API server or a load balancer reset). */
  dropConnections(): void {
    for (const w of this.watchers) w.res.socket?.destroy();
    this.watchers.clear();
  }

  /** Answers the next `n` requests with `status`. */
  failNext(n: number, status = 503): void {
    this.failures = { count: n, status };
  }

  /** While down, every request is answered 503. */
  setDown(down: boolean): void {
    this.down = down;
  }

  /** While stalled, requests are accepted and never answered; un-stalling destroys the held ones. */
  stall(on: boolean): void {
    this.stalled = on;
    if (on) return;
    for (const res of this.held) res.socket?.destroy();
    this.held.clear();
  }

  /** TCP connections open to the server (clients that keep idle sockets count too). */
  connections(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
    );
  }

  /** Open watches, per resource path. */
  openWatches(path?: string): number {
    return [...this.watchers].filter((w) => path === undefined || w.path === path).length;
  }

  async close(): Promise<void> {
    this.stall(false);
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private write(type: EventType, input: K8sObject): void {
    const path = PATH_OF_KIND.get(input.kind);
    if (!path) throw new Error(`the stand-in serves no kind ${input.kind}`);
    const table = this.objects.get(path) as Map<string, K8sObject>;
    const key = keyOf(input);
    const old = table.get(key);
    if (type === 'ADDED' && old) throw new Error(`${input.kind} ${key} exists`);
    if (type !== 'ADDED' && !old) throw new Error(`${input.kind} ${key} does not exist`);
    const rv = ++this.rv;
    const object = { ...input, metadata: { ...input.metadata, resourceVersion: String(rv) } };
    object.metadata.uid ??= old?.metadata.uid ?? `uid-${rv}`;
    if (type === 'DELETED') table.delete(key);
    else table.set(key, object);
    const event = { rv, path, type, object, old };
    this.history.push(event);
    for (const w of this.watchers) if (w.path === path) this.send(w, event);
  }

  /** Writes an event as the watcher sees it: objects entering or leaving its selector are added or deleted. */
  private send(w: Watcher, e: { type: EventType; object: K8sObject; old?: K8sObject }): void {
    const now = e.type !== 'DELETED' && w.match(e.object);
    const before = e.type === 'ADDED' ? false : e.old !== undefined && w.match(e.old);
    const type = now ? (before ? 'MODIFIED' : 'ADDED') : before ? 'DELETED' : undefined;
    if (type) w.res.write(`${JSON.stringify({ type, object: e.object })}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true' || query.watch === '1';
    const record = (code: number) => this.requests.push({ path: url.pathname, query, watch, status: code });
    const error = this.serve(req, res, url.pathname, query, watch, record);
    if (!error) return;
    record(error[0]);
    res.writeHead(error[0], { 'content-type': 'application/json' }).end(JSON.stringify(status(...error)));
  }

  /** Answers the request, or returns the error to answer with: [code, reason, message]. */
  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: Record<string, string>,
    watch: boolean,
    record: (code: number) => void,
  ): [number, string, string] | undefined {
    if (this.stalled) {
      record(0);
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    if (this.down) return [503, 'ServiceUnavailable', 'the stand-in is down'];
    if (this.failures.count > 0) {
      this.failures.count--;
      return [this.failures.status, 'InternalError', 'injected failure'];
    }
    const resource = RESOURCES[path];
    if (req.method !== 'GET' || !resource) return [404, 'NotFound', `no ${path}`];
    let match: (o: K8sObject) => boolean;
    try {
      const byField = selector(query.fieldSelector, field);
      const byLabel = selector(query.labelSelector, label);
      match = (o) => byField(o) && byLabel(o);
    } catch (err) {
      return [400, 'BadRequest', (err as Error).message];
    }
    if (watch) {
      const from = Number(query.resourceVersion || this.rv);
      if (from < this.oldest) return [410, 'Expired', `too old resource version: ${from}`];
      record(200);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      const w: Watcher = { path, match, res };
      for (const e of this.history) if (e.rv > from && e.path === path) this.send(w, e);
      this.watchers.add(w);
      res.on('close', () => this.watchers.delete(w));
      return;
    }
    // A list: a snapshot taken at the first page, served in pages of `limit` when asked to.
    let snap = query.continue ? this.snapshots.get(query.continue) : undefined;
    if (query.continue && !snap) return [410, 'Expired', 'continue token expired'];
    if (!snap) {
      const items = [...(this.objects.get(path) as Map<string, K8sObject>).values()].filter(match);
      snap = { rv: this.rv, items };
    }
    const offset = Number(query.continue?.split(':')[1] ?? 0);
    const limit = Number(query.limit) > 0 ? Number(query.limit) : Number.POSITIVE_INFINITY;
    const end = Math.min(snap.items.length, offset + limit);
    if (query.continue) this.snapshots.delete(query.continue);
    let next: string | undefined;
    if (end < snap.items.length) {
      // Unique per page: lists of several resources page at once, at the same offsets and resourceVersion.
      next = `${snap.rv}:${end}:${++this.continueTokens}`;
      this.snapshots.set(next, snap);
    }
    record(200);
    void this.stream(res, resource, snap.rv, snap.items, offset, end, next);
  }

  /** Writes a list item by item, honouring backpressure. */
  private async stream(
    res: ServerResponse,
    r: { kind: string; apiVersion: string },
    rv: number,
    items: K8sObject[],
    from: number,
    to: number,
    next: string | undefined,
  ): Promise<void> {
    const meta = { resourceVersion: String(rv), ...(next ? { continue: next } : {}) };
    res.writeHead(200, { 'content-type': 'application/json' });
    let chunk = `{"kind":"${r.kind}List","apiVersion":"${r.apiVersion}","metadata":${JSON.stringify(meta)},"items":[`;
    for (let i = from; i < to; i++) {
      chunk += (i > from ? ',' : '') + JSON.stringify(items[i]);
      if (chunk.length > 65536) {
        if (!res.write(chunk)) {
          await new Promise((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
        }
        if (res.destroyed) return;
        chunk = '';
      }
    }
    res.end(`${chunk}]}`);
  }
}

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** Polls `fn` every 10 ms until it returns something truthy; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
