// The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.0. A scrape of 100k series is over
// 100 MB of text, so it is never built whole: renderers append to a pending string and yield once it holds
// a chunk's worth, and the endpoint moves each chunk into a reused buffer on its way to the socket.

export type Format = 'text' | 'openmetrics';

export const CONTENT_TYPE: Record<Format, string> = {
  text: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Characters of pending text after which a renderer yields. */
export const CHUNK_CHARS = 1 << 16;

export class Exposition {
  private text = '';

  constructor(readonly format: Format) {}

  /**
   * HELP and TYPE of a family. `name` is the family name: for a counter without `_total`, which the
   * text format puts back (the name of its samples) and OpenMetrics leaves off.
   */
  family(name: string, type: MetricType, help: string): void {
    const om = this.format === 'openmetrics';
    const named = type === 'counter' && !om ? `${name}_total` : name;
    this.text += `# HELP ${named} ${om ? escapeHelpOpenMetrics(help) : escapeHelp(help)}\n# TYPE ${named} ${type}\n`;
  }

  /** Appends text; samples are written as `name{labels} value\n` by the caller. */
  write(text: string): void {
    this.text += text;
  }

  /** True once a chunk's worth of text is pending: renderers yield then. */
  get full(): boolean {
    return this.text.length >= CHUNK_CHARS;
  }

  /** Ends the exposition (OpenMetrics' `# EOF`). */
  end(): void {
    if (this.format === 'openmetrics') this.text += '# EOF\n';
  }

  /** The pending text, which is cleared. */
  take(): string {
    const t = this.text;
    this.text = '';
    return t;
  }
}

/**
 * Runs renderers (generators that yield whenever `out.full`) to the end and returns the exposition as
 * Buffer chunks: for tests, benchmarks and small outputs; the endpoint streams instead.
 */
export function renderAll(out: Exposition, renderers: Iterable<void>): Buffer[] {
  const chunks: Buffer[] = [];
  for (const _ of renderers) if (out.full) chunks.push(Buffer.from(out.take()));
  out.end();
  const rest = out.take();
  if (rest) chunks.push(Buffer.from(rest));
  return chunks;
}

const LABEL_SPECIAL = /[\\"\n]/;

/** A label value as it goes between quotes: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  if (!LABEL_SPECIAL.test(value)) return value;
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text in the text format: backslash and newline escaped. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** HELP text in OpenMetrics: backslash, newline and double quote escaped. */
export function escapeHelpOpenMetrics(text: string): string {
  return escapeHelp(text).replace(/"/g, '\\"');
}

/** A sample value: integers without exponent up to 1e21, NaN and ±Inf as the formats spell them. */
export function formatValue(v: number): string {
  if (Number.isFinite(v)) return v === 0 ? '0' : String(v);
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? '+Inf' : '-Inf';
}

/** A metric name: characters outside [a-zA-Z0-9_:] become `_`, and a leading digit gets a `_`. */
export function sanitizeMetricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** A label name: characters outside [a-zA-Z0-9_] become `_`, and a leading digit gets a `_`. */
export function sanitizeLabelName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

interface MediaRange {
  type: string;
  q: number;
}

function parseAccept(header: string): MediaRange[] {
  return header.split(',').map((part) => {
    const [type, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    let q = 1;
    for (const p of params) {
      if (p.startsWith('q=')) {
        const v = Number(p.slice(2));
        q = Number.isFinite(v) ? v : 0;
      }
    }
    return { type, q };
  });
}

/**
 * OpenMetrics when the client's Accept header asks for `application/openmetrics-text` at least as much as
 * for the text format (Prometheus sends both, OpenMetrics first); the text format 0.0.4 otherwise.
 */
export function negotiateFormat(accept: string | undefined): Format {
  if (!accept) return 'text';
  let om = 0;
  let text = 0;
  for (const r of parseAccept(accept)) {
    if (r.type === 'application/openmetrics-text') om = Math.max(om, r.q);
    else if (r.type === 'text/plain' || r.type === 'text/*' || r.type === '*/*') text = Math.max(text, r.q);
  }
  return om > 0 && om >= text ? 'openmetrics' : 'text';
}

/** True when Accept-Encoding allows gzip (q > 0). */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return parseAccept(acceptEncoding).some((r) => (r.type === 'gzip' || r.type === '*') && r.q > 0);
}
