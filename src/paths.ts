/** Where carpd's files are, shared by the daemon and carpctl so both agree on the state dir. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** `<checkout>/var` in a git checkout; `/var/db/carpd` when installed. */
export function defaultStateDir(): string {
  return existsSync(path.join(PACKAGE_ROOT, '.git')) ? path.join(PACKAGE_ROOT, 'var') : '/var/db/carpd';
}
