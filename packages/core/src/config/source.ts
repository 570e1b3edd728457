// Reading config files: YAML → one merged tree, with the file, line and column of every key kept so that
// any later error can say where the offending value was written.
import { constants } from 'node:fs';
import path from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument, stringify } from 'yaml';
import { NotRegularFileError, openRegularFile } from '../fs/file-kind.js';

export interface Position {
  file: string;
  line: number;
  column: number;
}

export interface Problem {
  /** `a::b::c`, as in the OpenTelemetry Collector's messages; '' for the file itself. */
  path: string;
  message: string;
  position?: Position;
}

/** Everything wrong with a configuration, all at once, each problem with its place. */
export class ConfigError extends Error {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    // In reading order: by file, line and column. A problem with no place is about a whole file (it cannot
    // be read) and comes first: it may explain the others.
    const sorted = [...problems].sort((a, b) => {
      if (!a.position || !b.position) return a.position ? 1 : b.position ? -1 : 0;
      return (
        a.position.file.localeCompare(b.position.file) ||
        a.position.line - b.position.line ||
        a.position.column - b.position.column
      );
    });
    super(sorted.map(formatProblem).join('\n'));
    this.problems = sorted;
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: Problem): string {
  const where = p.position ? `${p.position.file}:${p.position.line}:${p.position.column}: ` : '';
  return `${where}${p.path ? `${p.path}: ` : ''}${redactCredentials(p.message)}`;
}

// Up to the authority's last @: a password may hold an @ itself (https://user:p@ss@host).
const URL_USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#]*@/g;

/**
 * The text with the user-info of every URL in it (`https://user:password@host`, `https://token@host`)
 * replaced by `***`: a problem or log line says where a credential is, never what it is.
 */
export function redactCredentials(text: string): string {
  return text.replace(URL_USERINFO, '$1***@');
}

export type Tree = Record<string, unknown>;

export interface ConfigSource {
  tree: Tree;
  /** Position of every key (and sequence item) by path, from the last file that set it. */
  positions: Map<string, Position>;
  /** Directory of the file that first defined each component (`section::id`), for its relative paths. */
  configDirs: Map<string, string>;
  /**
   * Problems that did not stop the merge (a file that cannot be read): the tree holds the other files, and
   * these count among the configuration's problems.
   */
  problems?: Problem[];
}

export const joinPath = (parts: readonly (string | number)[]): string => parts.join('::');

/** The position of `path` or, when it was never written (a missing key), of its nearest written ancestor. */
export function positionOf(source: ConfigSource, parts: readonly (string | number)[]): Position | undefined {
  for (let n = parts.length; n >= 0; n--) {
    const pos = source.positions.get(joinPath(parts.slice(0, n)));
    if (pos) return pos;
  }
  return undefined;
}

/**
 * A configuration document made by the program rather than read from a file (the pipeline a command line
 * stands for): `name` is how problems point at it, `dir` where its relative paths resolve.
 */
export interface ConfigText {
  name: string;
  text: string;
  dir: string;
}

/** A config file's path, or a document made in memory. */
export type ConfigInput = string | ConfigText;

/**
 * Reads and merges config files in order: maps merge key by key, anything else is replaced.
 *
 * A file that cannot be read is left out of the merge and its problem is kept in `source.problems`, so the
 * other files are still checked (a missing per-node override should not hide the base file's problems). A
 * file that is not valid YAML, or not a mapping, throws after every file was read, with the problems of
 * all of them: what it meant to set is unknown, so checking the merge without it would report problems it
 * may fix (a component or pipeline only it defines) as if they were real.
 */
export async function readConfigFiles(files: readonly ConfigInput[]): Promise<ConfigSource> {
  const source: ConfigSource = { tree: {}, positions: new Map(), configDirs: new Map() };
  const unreadable: Problem[] = [];
  const problems: Problem[] = [];
  let merged = 0;
  if (files.length === 0)
    throw new ConfigError([{ path: '', message: 'no config file given (--config FILE)' }]);
  for (const input of files) {
    const file = typeof input === 'string' ? input : input.name;
    let text: string;
    try {
      text = typeof input === 'string' ? await readConfigFile(input) : input.text;
    } catch (err) {
      if (err instanceof NotRegularFileError || err instanceof ConfigFileError) {
        const what =
          err instanceof NotRegularFileError
            ? `it is ${err.kind}, not a regular file; give the path of a YAML file`
            : err.message;
        unreadable.push({ path: '', message: `cannot read config file ${displayPath(file)}: ${what}` });
        continue;
      }
      unreadable.push({
        path: '',
        message: `cannot read config file ${displayPath(file)}: ${systemError(err)}`,
      });
      continue;
    }
    const display = typeof input === 'string' ? displayPath(file) : file;
    const dir = typeof input === 'string' ? path.dirname(path.resolve(file)) : input.dir;
    const lines = new LineCounter();
    // prettyErrors off: it appends " at line L, column C:" and a code excerpt to the message, and the
    // position is already in the problem's file:line:column prefix.
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const lp = lines.linePos(e.pos[0]);
        problems.push({
          path: '',
          message: `invalid YAML: ${e.message}`,
          position: { file: display, line: lp.line, column: lp.col },
        });
      }
      continue;
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    merged++;
    if (value === null || value === undefined) continue; // an empty file adds nothing
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push({
        path: '',
        message: 'expected a mapping with receivers, processors, exporters, extensions and service',
        position: { file: display, line: 1, column: 1 },
      });
      continue;
    }
    const at = (node: Node | null | undefined): Position | undefined => {
      const offset = node?.range?.[0];
      if (offset === undefined) return undefined;
      const lp = lines.linePos(offset);
      return { file: display, line: lp.line, column: lp.col };
    };
    const walk = (node: unknown, parts: (string | number)[]): void => {
      if (isMap(node)) {
        for (const pair of node.items) {
          if (!isPair(pair)) continue;
          const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
          const next = [...parts, key];
          const pos = at(pair.key as Node);
          if (pos) source.positions.set(joinPath(next), pos);
          walk(pair.value, next);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => {
          const pos = at(item as Node);
          if (pos) source.positions.set(joinPath([...parts, i]), pos);
          walk(item, [...parts, i]);
        });
      }
    };
    // A problem with no better place (a missing top-level key) points at the start of the first file.
    if (!source.positions.has('')) source.positions.set('', { file: display, line: 1, column: 1 });
    walk(doc.contents, []);
    source.tree = merge(source.tree, value as Tree) as Tree;
    // Remember which file defined each component, so its relative paths resolve against that file.
    for (const section of ['receivers', 'processors', 'exporters', 'extensions']) {
      const defs = (value as Tree)[section];
      if (defs && typeof defs === 'object') {
        for (const id of Object.keys(defs)) {
          // The first file that defines a component owns its relative paths: an override that only
          // tweaks a setting must not move where `path: flows.jsonl` points.
          const key = `${section}::${id}`;
          if (!source.configDirs.has(key)) source.configDirs.set(key, dir);
        }
      }
    }
  }
  if (problems.length > 0 || merged === 0) throw new ConfigError([...unreadable, ...problems]);
  if (unreadable.length > 0) {
    const others = `checked the other file${merged === 1 ? '' : 's'} without it`;
    source.problems = unreadable.map((p) => ({ ...p, message: `${p.message}; ${others}` }));
  }
  return source;
}

/** Longest config file read: a pipeline file is a few KiB; more is a mistake, not a config. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/**
 * Reads a config file that must be a regular file: a FIFO with no writer (which would block `open`
 * forever), a directory or a device is refused at once. So `--config /dev/stdin` and `<(…)` are refused
 * too: write the config to a file.
 */
async function readConfigFile(file: string): Promise<string> {
  const handle = await openRegularFile(file, constants.O_RDONLY);
  try {
    const st = await handle.stat();
    if (st.size > MAX_CONFIG_BYTES) {
      throw new ConfigFileError(
        `it is ${st.size} bytes; a config file may be at most ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`,
      );
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

class ConfigFileError extends Error {}

/** `ENOENT (no such file or directory)`: the code to search for, and what it means. */
function systemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  // Node's message is "ENOENT: no such file or directory, open 'x.yaml'"; the file is named already.
  const what = /^[A-Z]+: ([^,]+)/.exec(e.message ?? '')?.[1];
  return e.code ? (what ? `${e.code} (${what})` : e.code) : String(e.message ?? err);
}

/** A configuration tree as YAML, in the form config files are written (no folded long lines). */
export function configToYaml(tree: unknown): string {
  return stringify(tree, { lineWidth: 0 });
}

/**
 * How a config file is named in messages: relative to the working directory when it lies below it (short),
 * otherwise as given, since `../../tmp/x.yaml` is harder to find than `/tmp/x.yaml`.
 */
export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return file;
  return rel;
}

function merge(base: unknown, over: unknown): unknown {
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Tree = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in out ? merge(out[k], v) : v;
    return out;
  }
  return over;
}

export function isPlainObject(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
