import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { ConfigIssue } from '@netmon/core';
import { pseudoFilesystemOf, systemError } from '@netmon/core';
import type { FileExporterConfig } from './config.js';
import { existingFileProblem, inspectOutputDirectory, type OutputDirectory } from './safety.js';

const pseudoFilesystemProblem = (file: string, root: string) =>
  `${file} is under ${root}, a kernel pseudo-filesystem where no file can be created; write to a real filesystem (e.g. /var/lib/netmon/flows.jsonl)`;

/**
 * `netmon validate` promises that a valid config starts, so the file must be writable now, or creatable:
 * the deepest folder of its path that exists is a directory netmon may write in (start creates the
 * missing folders), and the file and the way to it pass the checks start makes (safety.ts).
 */
export async function checkWritable(config: FileExporterConfig, configDir: string): Promise<ConfigIssue[]> {
  const file = resolve(configDir, config.path);
  const problem = (message: string): ConfigIssue[] => [{ key: 'path', message }];
  const lexical = pseudoFilesystemOf(file);
  if (lexical) return problem(pseudoFilesystemProblem(file, lexical));

  try {
    const wrong = await existingFileProblem(file);
    if (wrong) return problem(wrong);
  } catch (err) {
    return problem(`cannot write ${file}: ${systemError(err)}`);
  }

  let dir: OutputDirectory;
  try {
    dir = await inspectOutputDirectory(file);
  } catch (err) {
    return problem(`cannot check ${dirname(file)}: ${systemError(err)}`);
  }
  if (dir.problem) return problem(dir.problem);
  // Folders to create behind a link into a pseudo-filesystem (/dev/fd → /proc/self/fd) would hang mkdir.
  const behindLink = pseudoFilesystemOf(dir.real);
  if (behindLink) {
    const shown = dir.named === dir.real ? file : `${file} (${dir.named} is ${dir.real})`;
    return problem(pseudoFilesystemProblem(shown, behindLink));
  }
  // The file when it exists; else the folder it is to be created in (or its folders, below the deepest
  // one that exists).
  if (dir.missing.length === 0) {
    try {
      await access(file, constants.W_OK);
      return [];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        return problem(`cannot write ${file}: ${systemError(err)}`);
    }
  }
  try {
    await access(dir.real, constants.W_OK | constants.X_OK);
  } catch (err) {
    const what = dir.missing.length === 0 ? file : dirname(file);
    return problem(`cannot create ${what}: ${dir.real} is not writable: ${systemError(err)}`);
  }
  return [];
}
