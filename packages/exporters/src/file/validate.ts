import { constants } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { ConfigIssue } from '@netmon/core';
import { pseudoFilesystemOf, systemError } from '@netmon/core';
import type { FileExporterConfig } from './config.js';

import { directoryProblem, existingFileProblem } from './safety.js';

const pseudoFilesystemProblem = (file: string, root: string) =>
  `${file} is under ${root}, a kernel pseudo-filesystem where no file can be created; write to a real filesystem (e.g. /var/lib/netmon/flows.jsonl)`;

/**
 * `netmon validate` promises that a valid config starts, so the file must be writable now, or creatable:
 * its nearest existing ancestor is a directory netmon may write in (start creates the missing folders),
 * and the file and its folders pass the checks start makes (safety.ts).
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
    // ENOTDIR: an ancestor is a file; the walk below finds it and says so.
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR')
      return problem(`cannot write ${file}: ${systemError(err)}`);
  }

  let existing = file;
  let isDirectory: boolean;
  for (;;) {
    try {
      isDirectory = (await stat(existing)).isDirectory();
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || existing === dirname(existing)) {
        return problem(`cannot write ${file}: ${existing}: ${systemError(err)}`);
      }
      existing = dirname(existing);
    }
  }
  if (existing === file) {
    try {
      await access(file, constants.W_OK);
    } catch (err) {
      return problem(`cannot write ${file}: ${systemError(err)}`);
    }
    const unsafe = await directoryProblem(file).catch(
      (err) => `cannot check ${dirname(file)}: ${systemError(err)}`,
    );
    return unsafe ? problem(unsafe) : [];
  }
  // Folders to create behind a symlink into a pseudo-filesystem (/dev/fd → /proc/self/fd) would hang mkdir.
  const real = await realpath(existing).catch(() => existing);
  const behindLink = pseudoFilesystemOf(real);
  if (behindLink) return problem(pseudoFilesystemProblem(`${file} (${existing} is ${real})`, behindLink));
  if (!isDirectory) {
    return problem(`cannot create ${dirname(file)}: ${existing} is a file, not a directory`);
  }
  try {
    await access(existing, constants.W_OK | constants.X_OK);
  } catch (err) {
    const what = existing === dirname(file) ? file : dirname(file);
    return problem(`cannot create ${what}: ${existing} is not writable: ${systemError(err)}`);
  }
  const unsafe = await directoryProblem(file, existing).catch(
    (err) => `cannot check ${existing}: ${systemError(err)}`,
  );
  return unsafe ? problem(unsafe) : [];
}
