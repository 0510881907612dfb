/** A sync secondary's guard over the objects its sync primary manages. */
import { CarpdError } from '../errors.js';
import type { DesiredState } from '../config/model.js';
import type { StateDiff } from '../config/change.js';
import { managedChangesOf } from '../config/managed.js';

/**
 * On a sync secondary, a change to a synced object made here would be overwritten by the next
 * push, silently: refused instead, saying where to make it. With force the objects leave
 * sync (recorded in the draft's sync.detached). Returns what was detached, in words.
 */
export function guardSynced(current: DesiredState, draft: DesiredState, change: StateDiff, force: boolean): string | undefined {
  if (current.sync.role !== 'secondary') return undefined;
  const touched = managedChangesOf(current, draft, change);
  if (touched.vips.length === 0 && !touched.carp) return undefined;
  const what = [...touched.vips.map((k) => (k.startsWith('hook:') ? `hook ${k.slice(5)}` : k.startsWith('webhook:') ? `webhook ${k.slice(8)}` : k.startsWith('track:') ? `track ${k.slice(6)}` : `VIP ${k}`)), ...(touched.carp ? ['CARP enabled/preempt'] : [])].join(', ');
  if (!force) {
    const where = current.sync.peer ? ` (sync peer ${current.sync.peer.address})` : '';
    throw new CarpdError('CARPD_ERR_SYNC_MANAGED', `${what} ${touched.vips.length + (touched.carp ? 1 : 0) > 1 ? 'are' : 'is'} managed by this node's sync primary${where}: make the change there, or repeat it with force=true to detach ${touched.vips.length + (touched.carp ? 1 : 0) > 1 ? 'them' : 'it'} from sync here`);
  }
  const detached = new Set(draft.sync.detached.vips);
  // A forced removal is recorded too, so that the next push does not bring the VIP back.
  for (const k of touched.vips) detached.add(k);
  // A new section object: the draft's may be the stored revision's own, which is frozen.
  draft.sync = { ...draft.sync, detached: { vips: [...detached].sort(), carp: draft.sync.detached.carp || touched.carp } };
  return what;
}
