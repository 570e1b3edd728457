import { z } from 'zod';

export const fileExporterConfig = z.strictObject({
  path: z
    .string({ error: 'required: the file to write flow records to' })
    .min(1, 'path must not be empty')
    .describe(
      'File the flow records are appended to, one JSON object per line. A relative path resolves against the config file; missing parent directories are created.',
    ),
  rotation: z
    .strictObject({
      max_megabytes: z
        .number()
        .positive()
        .default(100)
        .describe(
          'Rotate before a write would make the file larger than this many MiB (1 MiB = 1,048,576 bytes). Lines are never split.',
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
