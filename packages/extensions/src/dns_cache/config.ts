import { duration, formatDuration } from '@netmon/core';
import { z } from 'zod';

/** The most entries a cache may hold: its hash index stays a 32-bit typed array of at most 2^26 slots. */
export const MAX_ENTRIES_LIMIT = 16_777_216;

export const dnsCacheConfig = z
  .strictObject({
    max_entries: z
      .number({ error: 'expected a whole number of entries, e.g. 100000' })
      .int('max_entries must be a whole number')
      .min(1, 'max_entries must be at least 1')
      .max(MAX_ENTRIES_LIMIT, `max_entries must be at most ${MAX_ENTRIES_LIMIT}`)
      .default(100_000)
      .describe(
        'The most entries the cache holds: one per answered address, plus one per client that resolved an address to another name than the one it was first resolved to. Past it, the entry used least recently goes (counted as eviction reason capacity). Memory: about 66 bytes an entry plus about 175 bytes a distinct name (at the default, 6 MiB when addresses share names, 23 MiB when each has its own).',
      ),
    min_ttl: duration()
      .prefault('60s')
      .describe(
        "The shortest time an answer is kept, whatever its TTL, and how long a lookup that finds it keeps it at least. Flows are read every few seconds and a connection outlives the answer that opened it (load balancers answer with TTLs of 5 s or less): an entry that expired with its TTL would leave the connection's later bytes without a name. 0s: answers live exactly their TTL.",
      ),
    max_ttl: duration()
      .prefault('1h')
      .describe(
        'The longest time an answer is kept without a lookup finding it, whatever its TTL (a day-long TTL would hold the address of a name nobody uses any more). Lookups that find it keep it longer, min_ttl at a time.',
      ),
  })
  .superRefine((c, ctx) => {
    if (c.min_ttl > c.max_ttl) {
      ctx.addIssue({
        code: 'custom',
        path: ['min_ttl'],
        message: `min_ttl (${formatDuration(c.min_ttl)}) must not be longer than max_ttl (${formatDuration(c.max_ttl)}); lower min_ttl or raise max_ttl`,
      });
    }
  });

export type DnsCacheConfig = z.output<typeof dnsCacheConfig>;
