/**
 * The optional bootstrap file (--config): the sections it names (vips, hooks, webhooks, carp, pfsync) replace
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
  let raw: unknown;
  try {
    raw = await parseText(text);
  } catch (e) {
    throw new BootstrapError(file, '', `is not valid YAML or JSON: ${(e as Error).message}`);
  }
  try {
    const b = readBootstrap(raw, service.desired());
    await service.mutate({ actor: 'bootstrap', dryRun: opts.dryRun }, `apply bootstrap file ${path.basename(file)}`, (draft) => {
      if (b.vips) draft.vips = b.vips;
      if (b.hooks) draft.hooks = b.hooks;
      if (b.webhooks) draft.webhooks = b.webhooks;
      if (b.tracks) draft.tracks = b.tracks;
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

/**
 * The content of a bootstrap file, YAML or JSON. JSON, the part of YAML that tools write, is
 * read with JSON.parse: the YAML parser builds a syntax tree of the whole file before the
 * values (about 60 MiB of objects for a file of 1000 VIPs), and that many objects alive at
 * once grow V8's young generation from 16 to 32 MiB, which the process keeps until V8's memory
 * reducer runs, a minute or more later (bench/README.md, "Memory"). A text that JSON.parse
 * refuses, or that holds a key twice in one object (JSON.parse keeps the last one, YAML
 * refuses the file), goes to the YAML parser, which answers as it always has. The YAML parser
 * is loaded only then: an unchanged file, the usual case at start, and a JSON one do not cost
 * its memory.
 */
export async function parseText(text: string): Promise<unknown> {
  if (/^\s*[[{]/.test(text)) {
    let value: unknown;
    let json = true;
    try {
      value = JSON.parse(text);
    } catch {
      json = false;
    }
    if (json && !hasDuplicateKey(text)) return value;
  }
  const { parse } = await import('yaml');
  return parse(text);
}

/** Whether an object of a valid JSON text has a key twice. */
function hasDuplicateKey(json: string): boolean {
  // One entry per open object (its keys so far) or array (undefined).
  const open: (Set<string> | undefined)[] = [];
  let keyNext = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i + 1;
      while (json.charCodeAt(end) !== 0x22) end += json.charCodeAt(end) === 0x5c /* \ */ ? 2 : 1;
      const keys = open[open.length - 1];
      if (keyNext && keys) {
        const key = JSON.parse(json.slice(i, end + 1)) as string;
        if (keys.has(key)) return true;
        keys.add(key);
      }
      keyNext = false;
      i = end;
    } else if (c === 0x7b /* { */) {
      open.push(new Set());
      keyNext = true;
    } else if (c === 0x5b /* [ */) {
      open.push(undefined);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      keyNext = false;
    } else if (c === 0x2c /* , */) {
      keyNext = open[open.length - 1] !== undefined;
    }
  }
  return false;
}
