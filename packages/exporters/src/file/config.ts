import { z } from 'zod';
import { fileModeProblem } from './safety.js';

/** 1 TiB: a larger file is never rotated in practice, and a typo (100000000) should not pass for a size. */
export const MAX_MEGABYTES = 1024 * 1024;

export const fileExporterConfig = z.strictObject({
  path: z
    .string({ error: 'required: the file to write flow records to' })
    .min(1, 'path must not be empty')
    .describe(
      "File the flow records are appended to, one JSON object per line, e.g. /var/lib/netmon/flows.jsonl. A relative path resolves against the config file; missing parent directories are created (mode 0750). Its directory (behind any link) must belong to root or netmon's user and be writable by its owner only; every folder and link on the way must belong to root or that user, folders writable by group or others only with the sticky bit. A symbolic or hard link at the path is refused, never followed.",
    ),
  file_mode: z
    .string({
      error:
        'expected an octal string in quotes, e.g. "0640" (unquoted, YAML reads 0640 as the decimal number 640)',
    })
    .superRefine((text, ctx) => {
      const problem = fileModeProblem(text);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .default('0640')
    .describe(
      'Permissions of the files it writes, rotated ones included, as a quoted octal string. Set on each file after opening it, so the umask does not change it. The owner reads and writes (6); no execute bits; others may not write.',
    ),
  rotation: z
    .strictObject({
      max_megabytes: z
        .number({ error: 'expected a number of MiB, e.g. 100' })
        .min(1, {
          error: (issue) =>
            `must be at least 1 (MiB), got ${issue.input}: a smaller file holds a few thousand records at most, and rotating that often only churns through max_files`,
        })
        .max(MAX_MEGABYTES, {
          error: (issue) => `must be at most ${MAX_MEGABYTES} (1 TiB), got ${issue.input}`,
        })
        .default(100)
        .describe(
          'Rotate before a batch would make the file larger than this many MiB (1 MiB = 1,048,576 bytes; fractions allowed). A batch is never split: one larger than the limit gets a file of its own.',
        ),
      max_files: z
        .number()
        .int()
        .min(1)
        .max(1000)
        .default(5)
        .describe('Rotated files to keep: path.1 (the newest) to path.N; the oldest is deleted.'),
    })
    .prefault({})
    .describe('Size-based rotation of the output file.'),
});

export type FileExporterConfig = z.output<typeof fileExporterConfig>;
