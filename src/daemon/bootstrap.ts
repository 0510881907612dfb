/**
 * The optional bootstrap file (--config): the sections it names (vips, carp, pfsync) replace
 * those of the desired state when the file changes, at start and on SIGHUP. An unchanged file
 * is not applied again, so edits made through the API since are kept.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../config/atomic.js';
import { DocumentError, readBootstrap } from '../config/document.js';
import type { CarpService } from '../service/service.js';

export class BootstrapError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${file}: ${field === '' ? '(document)' : field}: ${reason}`);
  }
}

export type BootstrapResult = 'unchanged' | 'applied';

/**
 * Applies the file if it changed since it was last applied. With `dryRun` it is read and the
 * change is validated and planned against the backend, and nothing is applied or recorded: at
 * start, a file that would be refused is found before carpd changes anything.
 */
export async function applyBootstrapFile(service: CarpService, file: string, stateDir: string, opts: { dryRun?: boolean } = {}): Promise<BootstrapResult> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new BootstrapError(file, '', `cannot be read: ${(e as Error).message}`);
  }
  const digest = createHash('sha256').update(text).digest('hex');
  const marker = path.join(stateDir, 'bootstrap.sha256');
  const applied = await fs.readFile(marker, 'utf8').catch(() => '');
  if (applied.trim() === digest) return 'unchanged';
  // The YAML parser is loaded only for a file that changed: an unchanged one, the usual case at
  // start, does not cost its memory.
  const { parse } = await import('yaml');
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (e) {
    throw new BootstrapError(file, '', `is not valid YAML or JSON: ${(e as Error).message}`);
  }
  try {
    const b = readBootstrap(raw, service.desired());
    await service.mutate({ actor: 'bootstrap', dryRun: opts.dryRun }, `apply bootstrap file ${path.basename(file)}`, (draft) => {
      if (b.vips) draft.vips = b.vips;
      if (b.carp) draft.carp = b.carp;
      if (b.pfsync) draft.pfsync = b.pfsync;
    });
  } catch (e) {
    if (e instanceof DocumentError) throw new BootstrapError(file, e.field, e.reason);
    if (e instanceof Error && 'code' in e) throw new BootstrapError(file, '', e.message);
    throw e;
  }
  if (opts.dryRun) return 'applied';
  await writeFileAtomic(marker, digest + '\n');
  return 'applied';
}
