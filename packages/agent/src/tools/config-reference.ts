// Renders docs/configuration-reference.md from the component schemas themselves, so the reference
// cannot drift from the code: a test fails when the committed file differs from this output.
import { type Factory, type Registry, serviceSchema } from '@netmon/core';
import { z } from 'zod';

interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  format?: string;
  durationMin?: string;
  durationMax?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: boolean | JsonSchema;
  minimum?: number;
  maximum?: number;
  anyOf?: JsonSchema[];
}

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (s.format === 'duration') return `duration (${s.durationMin ?? '0s'} – ${s.durationMax})`;
  if (s.anyOf) return s.anyOf.map(typeOf).join(' \\| ');
  const t = Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any');
  if (t === 'array' && s.items) return `list of ${typeOf(s.items)}`;
  if (t === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') {
    return `map of ${typeOf(s.additionalProperties)}`;
  }
  if ((t === 'integer' || t === 'number') && s.minimum !== undefined && s.minimum > -1e15) {
    const max = s.maximum !== undefined && s.maximum < 1e15 ? `..${s.maximum}` : '';
    return `${t} (≥ ${s.minimum}${max ? `, ≤ ${s.maximum}` : ''})`;
  }
  return t;
}

function rows(schema: JsonSchema, prefix = ''): Row[] {
  const out: Row[] = [];
  for (const [key, s] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}::${key}` : key;
    const required = schema.required?.includes(key) && s.default === undefined;
    const isObject = s.properties !== undefined;
    out.push({
      key: `\`${path}\``,
      type: isObject ? 'object' : typeOf(s),
      default: required ? '**required**' : s.default === undefined ? '' : `\`${JSON.stringify(s.default)}\``,
      description: (s.description ?? '').replace(/\n/g, ' ').replace(/\|/g, '\\|'),
    });
    if (isObject) out.push(...rows(s, path));
  }
  return out;
}

function table(schema: z.ZodType): string {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const r = rows(json);
  if (r.length === 0) return '_No settings._\n';
  return [
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...r.map((x) => `| ${x.key} | ${x.type} | ${x.default} | ${x.description} |`),
  ].join('\n');
}

const SECTION: Record<Factory['kind'], string> = {
  receiver: 'Receivers',
  processor: 'Processors',
  exporter: 'Exporters',
  extension: 'Extensions',
};

export function renderConfigReference(registry: Registry): string {
  const parts = [
    '# Configuration reference',
    '',
    '<!-- Generated from the component schemas by `npm run docs`; do not edit by hand. -->',
    '',
    'Every key of every component this build ships, with its type and default. Durations are written',
    '`500ms`, `5s`, `1m30s`, `1h`. How the file fits together is in [configuration.md](configuration.md).',
    '',
    '## service',
    '',
    table(serviceSchema),
    '',
    'Each pipeline under `service::pipelines::<id>` has:',
    '',
    table((serviceSchema.shape.pipelines as unknown as { valueType: z.ZodType }).valueType ?? z.object({})),
    '',
  ];
  for (const kind of ['receiver', 'processor', 'exporter', 'extension'] as const) {
    const factories = registry.all().filter((f) => f.kind === kind);
    if (factories.length === 0) continue;
    parts.push(`## ${SECTION[kind]}`, '');
    for (const f of factories) {
      const signals = 'signals' in f ? ` · signals: ${f.signals.join(', ')}` : '';
      const needs = f.extensions?.length ? ` · needs extensions: ${f.extensions.join(', ')}` : '';
      parts.push(
        `### \`${f.type}\``,
        '',
        `${f.description}`,
        '',
        `Stability: ${f.stability}${signals}${needs}`,
        '',
      );
      parts.push(table(f.config), '');
    }
  }
  return `${parts.join('\n').trimEnd()}\n`;
}
