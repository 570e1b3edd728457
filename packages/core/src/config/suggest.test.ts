import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance, extending, KIND_AFFIXES, nearest, squash, suggest } from './suggest.js';

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

describe('a name that grew', () => {
  const OTLP = ['endpoint', 'tls', 'sending_queue', 'retry_on_failure', 'timeout', 'interval', 'max_series'];
  const RETRY = ['enabled', 'initial_interval', 'max_interval', 'max_elapsed_time', 'multiplier'];

  it('extending finds the candidates that start with the input or hold it as whole words', () => {
    expect(extending('retry', OTLP)).toEqual(['retry_on_failure']);
    expect(extending('max_elapsed', RETRY)).toEqual(['max_elapsed_time']);
    expect(extending('maxElapsed', RETRY)).toEqual(['max_elapsed_time']);
    expect(extending('maxelapsed', RETRY)).toEqual(['max_elapsed_time']); // as a prefix once squashed
    expect(extending('elapsed_time', RETRY)).toEqual(['max_elapsed_time']);
    expect(extending('interval', RETRY)).toEqual(['initial_interval', 'max_interval']);
    // Part of a word is not a word: `lapse` is inside elapsed, `val` inside interval.
    expect(extending('lapse', RETRY)).toEqual([]);
    expect(extending('val', RETRY)).toEqual([]);
    // Shorter than three letters says too little; the input itself is not an extension of itself.
    expect(extending('ma', RETRY)).toEqual([]);
    expect(extending('enabled', RETRY)).toEqual([]);
  });

  it('nearest offers it only when one candidate extends the input, and after typos', () => {
    expect(nearest('retry', OTLP)).toEqual({ exact: [], close: ['retry_on_failure'] });
    expect(nearest('max_elapsed', RETRY)).toEqual({ exact: [], close: ['max_elapsed_time'] });
    expect(suggest('retry', OTLP)).toBe('did you mean retry_on_failure?');
    // Two candidates extend `interval`: which one is meant is a guess.
    expect(nearest('interval', ['read_interval', 'cleanup_interval'])).toEqual({ exact: [], close: [] });
    // A typo at a small distance comes first: `timout` is timeout, not a longer name.
    expect(nearest('timout', [...OTLP, 'timout_ms'])).toEqual({ exact: [], close: ['timeout'] });
    // Affixes dropped still count: `retryexporter` is not a type, but `otlpexp…` style inputs stay exact.
    expect(nearest('otlp_exporter', ['otlp', 'otlp_http'], { affixes: KIND_AFFIXES }).exact).toEqual([
      'otlp',
    ]);
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
