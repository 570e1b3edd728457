import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ConfigIssue } from '@netmon/core';
import { systemError } from '@netmon/core';
import type { FileReceiverConfig } from './config.js';

/**
 * `netmon validate` promises that a valid config starts, so the file must be there and readable now, not
 * only when `start` opens it. Checked with stat and access rather than by opening: opening a FIFO would
 * wait for a writer.
 */
export async function checkReadable(config: FileReceiverConfig, configDir: string): Promise<ConfigIssue[]> {
  const file = resolve(configDir, config.path);
  try {
    if ((await stat(file)).isDirectory()) {
      return [{ key: 'path', message: `${file} is a directory; path names the JSON Lines file to replay` }];
    }
    await access(file, constants.R_OK);
  } catch (err) {
    return [{ key: 'path', message: `cannot read ${file}: ${systemError(err)}` }];
  }
  return [];
}
