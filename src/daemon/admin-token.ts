/** The first admin token: created once, written to <state-dir>/admin.token (0600), never logged. */
import path from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../config/atomic.js';
import { hashToken, newTokenSecret, type CarpService } from '../service/service.js';

export async function ensureAdminToken(service: CarpService, stateDir: string, logger: Logger): Promise<void> {
  const file = path.join(stateDir, 'admin.token');
  if (service.desired().api.tokens.some((t) => t.role === 'admin')) return;
  const secret = newTokenSecret();
  // The file first: a crash before the commit leaves an unused file, never a token nobody can read.
  await writeFileAtomic(file, secret + '\n');
  const name = service.desired().api.tokens.some((t) => t.name === 'admin') ? `admin-${Date.now()}` : 'admin';
  await service.mutate({ actor: 'carpd' }, `create the first admin token "${name}"`, (draft) => {
    draft.api.tokens.push({ name, role: 'admin', sha256: hashToken(secret), createdAt: new Date().toISOString() });
  });
  logger.info({ event: 'token.created', file }, `created admin token "${name}"; it is in ${file}`);
}
