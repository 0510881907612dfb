/**
 * The administrative demotion adjustment (`admin`): what FreeBSD admins do with
 * `sysctl net.inet.carp.demotion=N`, as a named demotion of its own, signed (−240..240; a
 * negative one makes this node more preferred). The advertised skew stays clamped to 0..240
 * (engine/timing.ts effectiveSkew), so a negative sum never wraps.
 *
 * Where it is kept. It is this node's own setting, never synced: not part of the desired state
 * (which sync/derive.ts hands to peers, apart from the few per-node fields it keeps) but a file
 * of its own in the state directory, `admin-demotion.json`, next to the other per-node records
 * (identity, the FreeBSD demotion ledger). That file says what the admin wants; the backend
 * holds what is applied: on FreeBSD the maintenance ledger (kernel/freebsd/maintenance.ts)
 * records the delta it added, so applying the same value again after a restart (or a SIGKILL)
 * adds nothing, and clearing takes back exactly what was added; on a userspace backend the
 * named demotions live only in the process, so the file is what brings the adjustment back.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../config/atomic.js';

import { ADMIN_DEMOTION } from '../kernel/backend.js';

export const ADMIN_DEMOTION_NAME = ADMIN_DEMOTION;
export const ADMIN_DEMOTION_FILE = 'admin-demotion.json';
/** The adjustment's range: as far as the skew itself reaches, both ways. */
export const ADMIN_DEMOTION_MAX = 240;

/** The stored adjustment, 0 when none is stored (or the file is not carpd's). */
export async function readAdminDemotion(stateDir: string): Promise<number> {
  let raw: string;
  try {
    raw = await fs.readFile(path.join(stateDir, ADMIN_DEMOTION_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  const v = (JSON.parse(raw) as { value?: unknown }).value;
  return typeof v === 'number' && Number.isInteger(v) && Math.abs(v) <= ADMIN_DEMOTION_MAX ? v : 0;
}

/** Stores the adjustment (0: removes the file). */
export async function writeAdminDemotion(stateDir: string, value: number): Promise<void> {
  const file = path.join(stateDir, ADMIN_DEMOTION_FILE);
  if (value === 0) {
    await fs.rm(file, { force: true });
    return;
  }
  await writeFileAtomic(file, `${JSON.stringify({ version: 1, value })}\n`);
}
