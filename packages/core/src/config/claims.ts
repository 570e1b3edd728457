// What components take from the host when they run — a port they listen on, a file they read or write —
// declared by their factories (`claims`) so that two components that would collide are found by
// `netmon validate`, naming both, instead of failing at run time with a message that can only guess
// ("another process?") or, worse, not failing: a file exporter appending to the file its own pipeline's
// file receiver reads turns 113 records into 606.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { parseEndpoint } from './endpoint.js';

/** A resource a component takes; `key` is the config key (relative to the component) that names it. */
export type Claim =
  | { kind: 'listen'; key: string; endpoint: string }
  | { kind: 'read' | 'write'; key: string; path: string };

/** A component's claims, with the component's config path (`exporters::file`). */
export interface ClaimsOf {
  /** `receivers::file`, `extensions::health_check`, … */
  component: string;
  claims: readonly Claim[];
}

/** A collision: `at` is the component and key to report it at; the message names the other side. */
export interface ClaimConflict {
  component: string;
  key: string;
  message: string;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** Two listen addresses that cannot both be bound: the same port and host, or a wildcard host. */
function overlaps(a: string, b: string): boolean {
  const x = parseEndpoint(a);
  const y = parseEndpoint(b);
  if (x.port === 0 || x.port !== y.port) return false;
  if (WILDCARDS.has(x.host) || WILDCARDS.has(y.host)) return true;
  // localhost is how people write 127.0.0.1.
  const named = (h: string) => (h === 'localhost' ? '127.0.0.1' : h);
  return named(x.host) === named(y.host);
}

/**
 * The path as the kernel will see it once the file exists: symlinks in its folder resolved, so
 * `./out/flows.jsonl` and `/srv/netmon/flows.jsonl` through a link are one file.
 */
function canonical(file: string): string {
  const abs = path.resolve(file);
  try {
    return realpathSync(abs);
  } catch {
    try {
      return path.join(realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  }
}

/** Every collision among the claims, reported at the component listed later. */
export function findConflicts(all: readonly ClaimsOf[]): ClaimConflict[] {
  const conflicts: ClaimConflict[] = [];
  const seen: { component: string; claim: Claim; canonical?: string }[] = [];
  for (const { component, claims } of all) {
    for (const claim of claims) {
      const mine = claim.kind === 'listen' ? undefined : canonical(claim.path);
      for (const other of seen) {
        if (other.component === component) continue;
        const message = conflictMessage(claim, mine, other.component, other.claim, other.canonical);
        if (message) conflicts.push({ component, key: claim.key, message });
      }
      seen.push({ component, claim, canonical: mine });
    }
  }
  return conflicts;
}

function conflictMessage(
  claim: Claim,
  mine: string | undefined,
  otherComponent: string,
  other: Claim,
  theirs: string | undefined,
): string | undefined {
  const where = `${otherComponent}::${other.key}`;
  if (claim.kind === 'listen' || other.kind === 'listen') {
    if (claim.kind !== 'listen' || other.kind !== 'listen' || !overlaps(claim.endpoint, other.endpoint)) {
      return undefined;
    }
    return `${claim.endpoint} collides with ${where} (${other.endpoint}): two components cannot serve one port; give each its own port (or, where one can, serve both from one component)`;
  }
  if (mine !== theirs) return undefined;
  if (claim.kind === 'read' && other.kind === 'read') return undefined;
  if (claim.kind === 'write' && other.kind === 'write') {
    return `${claim.path} is also written by ${where}: two writers interleave and rotate each other's lines; give each its own file`;
  }
  return `${claim.path} is read by one component and written by the other (${where}): the reader would read back the writer's output, counting every record again; write to another file`;
}
