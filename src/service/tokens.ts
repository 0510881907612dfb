/**
 * API tokens and If-Match: hashing a token, making a new secret, finding a token's owner in the
 * desired state (an index by hash, rebuilt when the revision changes), and the revision check
 * every change makes against the If-Match header.
 */
import * as nodeCrypto from 'node:crypto';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { CarpdError } from '../errors.js';
import type { DesiredState, Role, TokenRecord } from '../config/model.js';

export interface AuthContext {
  name: string;
  role: Role;
}

// Every API request hashes its token: crypto.hash (Node 20.12 and later) does it in a quarter
// of createHash's time; earlier Node 20 releases lack it.
const oneShotHash = (nodeCrypto as { hash?: typeof nodeCrypto.hash }).hash;

export function hashToken(token: string): string {
  return oneShotHash ? oneShotHash('sha256', token, 'hex') : createHash('sha256').update(token, 'utf8').digest('hex');
}

export function newTokenSecret(): string {
  return `carpd_${randomBytes(32).toString('base64url')}`;
}

/** Parses an If-Match header: a list of entity tags, or `*`. */
export function ifMatchAccepts(header: string, revision: number): boolean {
  const tags = header.split(',').map((t) => t.trim());
  return tags.some((t) => t === '*' || t === `"${revision}"` || t === `W/"${revision}"`);
}

export function checkIfMatch(ifMatch: string | undefined, revision: number): void {
  if (ifMatch !== undefined && !ifMatchAccepts(ifMatch, revision)) {
    throw new CarpdError('CARPD_ERR_PRECONDITION_FAILED', `If-Match ${ifMatch} does not match the current revision "${revision}": someone else changed the configuration; GET it again, re-apply your change, and retry`, { currentRevision: revision });
  }
}

/**
 * The tokens of a desired state by hash, rebuilt when its token list changes. Revisions share
 * the objects a change did not touch (stored revisions are frozen), so a VIP change keeps the
 * list, and the index, of the revision before it.
 */
export class TokenIndex {
  private index?: { tokens: readonly TokenRecord[]; byHash: Map<string, TokenRecord> };

  /** The token's owner, or undefined. Compares hashes in constant time. */
  authenticate(state: DesiredState, token: string): AuthContext | undefined {
    const tokens = state.api.tokens;
    // A list not frozen could be edited in place: only a stored (frozen) one is trusted to stay.
    if (this.index?.tokens !== tokens || !Object.isFrozen(tokens)) {
      this.index = { tokens, byHash: new Map(tokens.map((t) => [t.sha256, t])) };
    }
    const digest = hashToken(token);
    const found = this.index.byHash.get(digest);
    if (!found || !timingSafeEqual(Buffer.from(found.sha256, 'hex'), Buffer.from(digest, 'hex'))) return undefined;
    return { name: found.name, role: found.role };
  }
}
