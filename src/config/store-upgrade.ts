/**
 * The conversion of a state dir of the earlier format (config.json + revisions/<N>.json, one
 * whole document per revision) to a snapshot and a journal, and the start of a journal for a
 * config.json that has none (put back by hand). Run once by ConfigStore.open (store.ts) before
 * it reads the state dir as usual; kept apart because nothing else in the store needs it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readStoredState } from './document.js';
import type { DesiredState } from './model.js';
import { fsyncDir, writeFileAtomic } from './atomic.js';
import { diffStates } from './change.js';
import { encodeLine, type RevisionMeta } from './journal.js';
import { journalName, KEEP_REVISIONS, metaOf, pad, sha256, snapshotName, type Listing, type StoreLog } from './store-files.js';

/**
 * config.json without a journal for its revision: a state dir of the earlier format, or one
 * whose config.json was put back by hand. The journal starts at config.json's revision; the
 * earlier format's revision files become snapshots and journals (history), then go.
 */
export async function startJournal(dir: string, text: string, base: DesiredState, listing: Listing, log: StoreLog): Promise<void> {
  const revisionsDir = path.join(dir, 'revisions');
  const x = base.revision;
  const olds: { meta: RevisionMeta; state: DesiredState }[] = [];
  for (const n of listing.old) {
    if (n > x) continue; // never acknowledged: newer than the revision in force
    try {
      const rec = JSON.parse(await fs.readFile(path.join(revisionsDir, `${pad(n)}.json`), 'utf8')) as { meta?: RevisionMeta; state?: unknown };
      if (rec.meta?.revision !== n) continue;
      olds.push({ meta: metaOf(rec.meta), state: readStoredState(rec.state) });
    } catch {
      // A history file that does not parse only loses that history entry; config.json is the truth.
    }
  }
  const kept = olds.slice(-KEEP_REVISIONS);
  // Snapshots and journals at or after config.json's revision belong to another history.
  for (const n of listing.journals) if (n >= x) await fs.rm(path.join(revisionsDir, journalName(n)), { force: true });
  for (const n of listing.snapshots) if (n >= x) await fs.rm(path.join(revisionsDir, snapshotName(n)), { force: true });
  // Runs of consecutive revisions: each becomes a snapshot and a journal of the rest.
  for (let i = 0; i < kept.length; ) {
    let j = i;
    while (j + 1 < kept.length && kept[j + 1].meta.revision === kept[j].meta.revision + 1) j++;
    const first = kept[i];
    if (first.meta.revision < x) {
      const snap = JSON.stringify(first.state, null, 2) + '\n';
      await writeFileAtomic(path.join(revisionsDir, snapshotName(first.meta.revision)), snap, { syncDir: false });
      const lines = [encodeLine({ journal: 1, base: first.meta.revision, meta: first.meta, snapshotSha256: sha256(snap) })];
      for (let k = i + 1; k <= j; k++) lines.push(encodeLine({ ...kept[k].meta, patch: diffStates(kept[k - 1].state, kept[k].state).ops }));
      await writeFileAtomic(path.join(revisionsDir, journalName(first.meta.revision)), Buffer.concat(lines), { syncDir: false });
    }
    i = j + 1;
  }
  const own = kept.find((o) => o.meta.revision === x)?.meta ?? { revision: x, createdAt: base.updatedAt, actor: 'carpd', summary: 'the configuration in force when the journal was started' };
  // The journal of config.json's revision makes the conversion: written last, with a directory fsync.
  await writeFileAtomic(path.join(revisionsDir, journalName(x)), encodeLine({ journal: 1, base: x, meta: own, snapshotSha256: sha256(text) }));
  for (const n of listing.old) await fs.rm(path.join(revisionsDir, `${pad(n)}.json`), { force: true });
  await fsyncDir(revisionsDir);
  if (listing.old.length > 0) {
    log.info({ event: 'store.converted', revision: x, history: kept.length }, `converted ${revisionsDir} to the journal: revision ${x} in force, ${kept.length} revisions of history kept, ${listing.old.length} revision files of the earlier format removed`);
  } else {
    log.info({ event: 'journal.started', revision: x }, `${path.join(dir, 'config.json')} (revision ${x}) has no journal; started one`);
  }
}
