// Why a line is not a flow record, in words that never repeat what the line holds. The receiver may be
// pointed at any file (a mistyped path, /etc/shadow), and its log goes wherever logs go: a line's text, a
// value, even an unknown key may be a secret. So a reason names the record's own fields and says what was
// expected; anything that came from the line is referred to by position ("key 3 of the object").
import { FLOW_RECORD_FIELDS } from '@netmon/core';

const FIELDS = new Set<string>(FLOW_RECORD_FIELDS);
const TIME_EXAMPLE = '2026-01-01T00:00:00.000Z';

/**
 * The reason to log for `error`, what `decodeFlowRecord` said about `line`. Its wording quotes values from
 * the line; this keeps only the field and what was wrong. Called only for the lines that are logged.
 */
export function safeReason(error: string, line: string): string {
  if (error.startsWith('not JSON')) return 'not JSON';
  if (error === 'expected a JSON object') return 'not a JSON object';
  if (error.startsWith('unknown field ')) {
    const k = keyIndex(line, (obj) => Object.keys(obj).findIndex((key) => !FIELDS.has(key)));
    return `unknown field: ${k > 0 ? `key ${k} of the object` : 'a key'} is not a flow record field`;
  }
  if (error.startsWith('attributes.')) {
    const k = keyIndex(line, (obj) => {
      const attributes = obj.attributes;
      if (typeof attributes !== 'object' || attributes === null) return -1;
      return Object.values(attributes).findIndex(
        (v) => typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean',
      );
    });
    return `attributes: ${k > 0 ? `key ${k}` : 'a key'} holds neither a string, a number nor a boolean`;
  }
  const colon = error.indexOf(':');
  const field = colon > 0 ? error.slice(0, colon) : '';
  if (!FIELDS.has(field)) return 'not a valid flow record';
  const rest = error.slice(colon + 1);
  // Without a quote the wording is all ours: the field and what it expected (`expected an integer 0..65535`).
  if (!rest.includes('"')) return error;
  if (rest.endsWith(' is not an IP address')) return `${field}: not an IP address`;
  if (rest.endsWith(' in a family 4 record')) return `${field}: an IPv6 address in a family 4 record`;
  if (rest.includes(' is not an RFC 3339 time'))
    return `${field}: not an RFC 3339 time such as ${TIME_EXAMPLE}`;
  return `${field}: not a valid value`;
}

/** 1-based position found by `find` in the line's object; 0 when the line does not parse as one. */
function keyIndex(line: string, find: (obj: Record<string, unknown>) => number): number {
  try {
    const obj = JSON.parse(line) as unknown;
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return 0;
    return find(obj as Record<string, unknown>) + 1;
  } catch {
    return 0;
  }
}

/** The attribute kinds as a reason says them. */
export const KIND_WORDS = { string: 'a string', number: 'a number', bool: 'a boolean' } as const;
