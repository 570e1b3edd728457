// Cluster snapshot files: the JSON `kubectl get pods,nodes,services,endpointslices -A -o json` prints,
// read instead of the API (flow archives analysed after the fact, replays). This module only reads and
// sorts items by kind; the extension feeds them through the informers' normalizers into the same store.
import { readFile, stat } from 'node:fs/promises';

/** The kinds the store is built from, by the informer resource they stand in for. */
export const SNAPSHOT_KINDS = {
  Pod: 'pods',
  Node: 'nodes',
  Service: 'services',
  EndpointSlice: 'endpointslices',
} as const;

export type SnapshotKind = keyof typeof SNAPSHOT_KINDS;
export type SnapshotResource = (typeof SNAPSHOT_KINDS)[SnapshotKind];

/** apiVersions each kind is read in (EndpointSlice v1beta1 has the fields the store reads under the same names). */
const API_VERSIONS: Record<SnapshotKind, readonly string[]> = {
  Pod: ['v1'],
  Node: ['v1'],
  Service: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1', 'discovery.k8s.io/v1beta1'],
};

export interface SnapshotItem {
  kind: SnapshotKind;
  // biome-ignore lint/suspicious/noExplicitAny: API objects are read defensively by the normalizers.
  object: any;
  /** Where in the file: `items[3]`, or `the file` for a single object. */
  at: string;
}

export interface SnapshotFile {
  path: string;
  /** The supported items, in file order. */
  items: SnapshotItem[];
  /** Items of other kinds, by kind (and apiVersion when it is not the kind's usual one). */
  skipped: Map<string, number>;
  /** Items that are no object or have no kind (in a plain List, where each item names its own). */
  noKind: string[];
}

/** A snapshot file that cannot be used at all; the message names the file and, for JSON, the position. */
export class SnapshotError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path} ${reason}`);
    this.name = 'SnapshotError';
  }
}

const HOW = 'write it with kubectl get pods,nodes,services,endpointslices -A -o json';

/** Reads one snapshot file; throws SnapshotError when it is missing, unreadable or not a Kubernetes object or list. */
export async function readSnapshotFile(path: string): Promise<SnapshotFile> {
  let bytes: Buffer;
  try {
    if (!(await stat(path)).isFile()) throw new SnapshotError(path, 'is not a file');
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof SnapshotError) throw err;
    throw new SnapshotError(path, fileProblem(err));
  }
  let text: string;
  try {
    text = decode(bytes);
  } catch (err) {
    throw new SnapshotError(path, fileProblem(err));
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new SnapshotError(path, jsonProblem(text, err as Error));
  }
  return sortItems(path, doc);
}

function fileProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'is not readable';
  if (code === 'EISDIR') return 'is not a file';
  if (code === 'ERR_STRING_TOO_LONG' || code === 'ERR_FS_FILE_TOO_LARGE') {
    // One JSON text must fit in one string (about 512 MiB here); the key takes a list of files instead.
    return 'is too large to read as one JSON text: split the snapshot into several files (e.g. one kubectl get per namespace or per kind) and list them all under snapshot';
  }
  return (err as Error).message ?? String(err);
}

/** UTF-8, with or without a byte-order mark; UTF-16LE with its mark (what PowerShell 5's `>` writes). */
function decode(bytes: Buffer): string {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return bytes.toString('utf16le', 2);
  const start = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  return bytes.toString('utf8', start);
}

function jsonProblem(text: string, err: Error): string {
  if (text.trim() === '') return `is empty: expected the JSON of a Kubernetes List or object (${HOW})`;
  if (/^\s*(apiVersion|kind|items|metadata)\s*:/m.test(text) && !/^\s*[{[]/.test(text)) {
    return `is not JSON (it looks like YAML): ${HOW}`;
  }
  // V8 names the position for most errors but not all ("Unexpected token 'x', …"): find it ourselves.
  let offset = firstJsonError(text);
  if (offset < 0) {
    const m = / at position (\d+)/.exec(err.message);
    offset = m ? Number(m[1]) : -1;
  }
  const reason = err.message
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/, (?:\.\.\.)?".*$/s, '')
    .replace(/ is not valid JSON$/, '');
  if (offset < 0) return `is not valid JSON: ${reason}`;
  const { line, column } = lineColumn(text, offset);
  return `is not valid JSON at line ${line} column ${column}: ${reason}`;
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * The offset of the first JSON syntax error in `s` (RFC 8259), -1 when there is none. Runs only after
 * JSON.parse failed, to say where: V8 leaves the position out of some of its messages.
 */
export function firstJsonError(s: string): number {
  let i = 0;
  const n = s.length;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      i++;
    }
  };
  const word = (w: string) => {
    for (let k = 0; k < w.length; k++, i++) if (s[i] !== w[k]) fail();
  };
  const string = () => {
    i++;
    for (;;) {
      if (i >= n) fail();
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c !== 0x5c) {
        i++;
        continue;
      }
      i++;
      const e = s[i];
      if (e === 'u') {
        for (let k = 0; k < 4; k++) {
          i++;
          if (!/[0-9a-fA-F]/.test(s[i] ?? '')) fail();
        }
        i++;
      } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
      else fail();
    }
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (s[i] !== '"') fail();
        string();
        ws();
        if (s[i] !== ':') fail();
        i++;
        value();
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === '}') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === ']') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '"') string();
    else if (c === 't') word('true');
    else if (c === 'f') word('false');
    else if (c === 'n') word('null');
    else {
      NUMBER.lastIndex = i;
      if (!NUMBER.test(s)) fail();
      i = NUMBER.lastIndex;
    }
  };
  try {
    value();
    ws();
    if (i < n) fail();
    return -1;
  } catch (at) {
    // A RangeError (nesting deeper than the stack) leaves the position unknown.
    return typeof at === 'number' ? at : -1;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON, checked field by field.
type Json = any;

const isObject = (v: unknown): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function sortItems(path: string, doc: unknown): SnapshotFile {
  const out: SnapshotFile = { path, items: [], skipped: new Map(), noKind: [] };
  if (!isObject(doc) || typeof doc.kind !== 'string' || doc.kind === '') {
    const found = Array.isArray(doc)
      ? 'an array'
      : isObject(doc)
        ? 'an object without "kind"'
        : doc === null
          ? 'null'
          : `a ${typeof doc}`;
    throw new SnapshotError(
      path,
      `is not a Kubernetes object or list: expected an object with "kind" (List, PodList, …, or Pod, Node, Service, EndpointSlice), found ${found} (${HOW})`,
    );
  }
  const kind: string = doc.kind;
  if (!kind.endsWith('List')) {
    add(out, doc, kind, doc.apiVersion, 'the file');
    return out;
  }
  if (doc.items !== undefined && doc.items !== null && !Array.isArray(doc.items)) {
    throw new SnapshotError(path, `has "items" that is not an array (${kind})`);
  }
  const items: unknown[] = doc.items ?? [];
  // A typed list (PodList, as the API itself answers) leaves kind and apiVersion out of its items.
  const implied = kind === 'List' ? undefined : kind.slice(0, -'List'.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const at = `items[${i}]`;
    const itemKind =
      isObject(item) && typeof item.kind === 'string' && item.kind !== '' ? item.kind : implied;
    if (!isObject(item) || itemKind === undefined) {
      out.noKind.push(at);
      continue;
    }
    add(out, item, itemKind, item.apiVersion ?? (implied ? doc.apiVersion : undefined), at);
  }
  return out;
}

function add(out: SnapshotFile, object: Json, kind: string, apiVersion: unknown, at: string): void {
  const versions = (API_VERSIONS as Record<string, readonly string[] | undefined>)[kind];
  if (versions && (apiVersion === undefined || versions.includes(apiVersion as string))) {
    out.items.push({ kind: kind as SnapshotKind, object, at });
    return;
  }
  // Same kind name in another API group (Knative's serving.knative.dev Service): not ours, and say which.
  const key = versions && typeof apiVersion === 'string' ? `${kind} (${apiVersion})` : kind;
  out.skipped.set(key, (out.skipped.get(key) ?? 0) + 1);
}
