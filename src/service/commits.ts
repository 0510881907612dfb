/**
 * Group commit, as the service uses it: changes staged in the store (ConfigStore.stage) and
 * answered once durable, in the order they were staged. The store is flushed on the next turn
 * of the event loop, beside the change queue, so the next changes are made while a group is
 * written. When the store cannot write a group it drops it with everything staged on top (each
 * was planned on it); from then until the undo has run, no change is made.
 */
import { storeFailure } from './store-errors.js';
import type { DesiredState } from '../config/model.js';
import type { ConfigStore } from '../config/store.js';
import type { Snapshot } from './plan.js';

/** A change staged in the store, answered when it is durable (or undone with its group). */
export interface PendingCommit {
  next: DesiredState;
  words: string;
  actor: string;
  origin: 'api' | 'sync';
  steps: number;
  /** The live state of the vhids the change touched, before it: what undoing it plans back to. */
  before: Snapshot;
  keys: string[];
}

interface Tracked extends PendingCommit {
  /** Settles when the change has been answered: durable, or failed (and undone). */
  answered: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface StagedCommitsDeps {
  store: ConfigStore;
  /** A change is durable: logged and told to the listeners, before it is answered. */
  committed: (p: PendingCommit) => void;
  /** The store dropped these changes (in staging order): take them back in the backend, newest first. */
  undo: (dropped: PendingCommit[], cause: Error) => Promise<void>;
  /** Runs a job in the change queue (after the jobs queued before it, alone). */
  exclusive: (job: () => Promise<void>) => Promise<void>;
}

export class StagedCommits {
  /** Staged changes not yet durable, in the order they were staged: the groups being written and the one being gathered. */
  private unsettled: Tracked[] = [];
  /** A flush of the store is due on the next turn of the event loop (the changes staged until then form its group). */
  private flushDue = false;
  /** Set from the moment a group could not be stored until it and the changes staged on top are undone. */
  private failure?: Error;

  constructor(private readonly deps: StagedCommitsDeps) {}

  /** Follows a change the store has staged (`durable`: its ConfigStore.stage promise); resolves when it is durable. */
  track(change: PendingCommit, durable: Promise<void>): Promise<void> {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const answered = new Promise<void>((ok, fail) => ((resolve = ok), (reject = fail)));
    const p: Tracked = { ...change, answered, resolve, reject };
    this.unsettled.push(p);
    durable.then(
      () => this.committed(p),
      (e: unknown) => this.notStored(e),
    );
    this.scheduleFlush();
    return answered;
  }

  /** An answer that needs no commit, given once the changes it was checked against are durable. */
  afterLast<T>(value: T): Promise<T> {
    const last = this.unsettled.at(-1);
    if (!last) return Promise.resolve(value);
    return new Promise<void>((resolve, reject) => {
      const { resolve: r0, reject: j0 } = last;
      last.resolve = () => (r0(), resolve());
      last.reject = (e) => (j0(e), reject(e));
    }).then(() => value);
  }

  /**
   * No change is made while changes the store dropped are not undone yet: from the moment the
   * store went back (its head is then older than a staged change) until the undo has run.
   */
  refuseWhileUndoing(): void {
    const last = this.unsettled.at(-1);
    const dropped = this.failure ?? (last && this.deps.store.head().revision < last.next.revision ? new Error('an earlier change could not be stored') : undefined);
    if (dropped) throw storeFailure(dropped, (why) => `an earlier change could not be stored and is being undone (${why}); nothing was changed`);
  }

  /** Resolves when every change staged so far has been answered (the caller drains its queue first). */
  async settled(): Promise<boolean> {
    if (this.unsettled.length === 0) return true;
    if (this.flushDue) await new Promise((r) => setImmediate(r));
    await Promise.allSettled(this.unsettled.map((p) => p.answered));
    return false;
  }

  private scheduleFlush(): void {
    if (this.flushDue) return;
    this.flushDue = true;
    setImmediate(() => {
      this.flushDue = false;
      this.deps.store.flush().catch(() => undefined);
    });
  }

  /** The store settles staged changes in the order they were staged. */
  private committed(p: Tracked): void {
    const i = this.unsettled.indexOf(p);
    if (i >= 0) this.unsettled.splice(i, 1);
    this.deps.committed(p);
    p.resolve();
  }

  private notStored(e: unknown): void {
    if (this.failure) return;
    this.failure = e instanceof Error ? e : new Error(String(e));
    this.deps.exclusive(() => this.undoUnsettled()).catch(() => undefined);
  }

  private async undoUnsettled(): Promise<void> {
    const group = this.unsettled;
    this.unsettled = [];
    const cause = this.failure ?? new Error('the store dropped the change');
    if (group.length > 0) await this.deps.undo(group, cause);
    this.failure = undefined;
    // A journal that could not be cut back (the store refuses from then on) still holds part of the record; the next start drops it.
    const left = this.deps.store.refusal() ? 'part of its record stays at the end of the journal until carpd is restarted, which drops it' : 'nothing of it is left in the state directory';
    const err = storeFailure(cause, (why) => `the change was applied but could not be stored (${why}), so it was undone; ${left}`);
    for (const p of group) p.reject(err);
  }
}
