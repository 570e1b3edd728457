import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance, KIND_AFFIXES, nearest, squash, suggest } from './suggest.js';

const PROCESSORS = ['classify', 'cost', 'delta', 'filter', 'k8s_attributes', 'plugin'];
const EXPORTERS = ['debug', 'devzero', 'file', 'otlp', 'prometheus'];

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['abc', '', 3],
    ['', 'ab', 2],
    ['read_intervl', 'read_interval', 1],
    ['reciever', 'receiver', 1], // a swap of neighbours is one edit
    ['kitten', 'sitting', 3],
    ['dsn', 'dns', 1],
    ['ab', 'ba', 1],
  ])('%j → %j is %d', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
    expect(editDistance(b, a)).toBe(d);
  });
});

describe('nearest', () => {
  it('sets case and separators aside', () => {
    expect(squash('K8s-Attributes')).toBe('k8sattributes');
    expect(nearest('k8sattributes', PROCESSORS)).toEqual({ exact: ['k8s_attributes'], close: [] });
    expect(nearest('K8s-Attributes', PROCESSORS).exact).toEqual(['k8s_attributes']);
    expect(nearest('k8s.attributes', PROCESSORS).exact).toEqual(['k8s_attributes']);
  });

  it('drops a kind glued to the type when asked to', () => {
    const o = { affixes: KIND_AFFIXES };
    expect(nearest('prometheusexporter', EXPORTERS, o).exact).toEqual(['prometheus']);
    expect(nearest('otlp_exporter', EXPORTERS, o).exact).toEqual(['otlp']);
    expect(nearest('exporter-otlp', EXPORTERS, o).exact).toEqual(['otlp']);
    expect(nearest('k8sattributesprocessor', PROCESSORS, o).exact).toEqual(['k8s_attributes']);
    // Without affixes, `prometheusexporter` is 8 edits from `prometheus`: nothing.
    expect(nearest('prometheusexporter', EXPORTERS)).toEqual({ exact: [], close: [] });
  });

  it('finds small typos, with more room for longer words', () => {
    expect(nearest('read_intervl', ['read_interval', 'cleanup_interval']).close).toEqual(['read_interval']);
    expect(nearest('prometeus', EXPORTERS).close).toEqual(['prometheus']);
    expect(nearest('reciever', ['receivers', 'processors']).close).toEqual(['receivers']);
    expect(nearest('pat', ['path', 'pace']).close).toEqual(['path']);
    expect(nearest('fiel', EXPORTERS).close).toEqual(['file']);
  });

  it('keeps every candidate at the best distance, and nothing farther', () => {
    expect(nearest('dela', ['delta', 'debug', 'devzero']).close).toEqual(['delta']);
    expect(nearest('fil', ['file', 'fill', 'filter']).close).toEqual(['file', 'fill']);
  });

  it('suggests nothing far, nothing for short words that share little, and never the input itself', () => {
    expect(nearest('kafka', EXPORTERS)).toEqual({ exact: [], close: [] });
    expect(nearest('a', ['ab'])).toEqual({ exact: [], close: [] });
    expect(nearest('ttl', ['url'])).toEqual({ exact: [], close: [] });
    expect(nearest('debug', EXPORTERS)).toEqual({ exact: [], close: [] });
    expect(nearest('', EXPORTERS)).toEqual({ exact: [], close: [] });
  });
});

describe('didYouMean', () => {
  it('lists up to three names', () => {
    expect(didYouMean([])).toBe('');
    expect(didYouMean(['a'])).toBe('did you mean a?');
    expect(didYouMean(['a', 'b'])).toBe('did you mean a or b?');
    expect(didYouMean(['a', 'b', 'c', 'd'])).toBe('did you mean a, b or c?');
  });

  it('suggest prefers an exact match over a close one', () => {
    expect(suggest('Delta', ['delta', 'deltas'])).toBe('did you mean delta?');
    expect(suggest('deltx', ['delta', 'deltas'])).toBe('did you mean delta?');
    expect(suggest('zzz', ['delta'])).toBe('');
  });
});
