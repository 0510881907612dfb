/**
 * TokenIndex: the index of a state's tokens is kept while the state's (stored, frozen) token
 * list is, and follows any other list, so that a token added or revoked counts at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freezeState } from '../src/config/change.js';
import { initialState, type DesiredState, type TokenRecord } from '../src/config/model.js';
import { hashToken, TokenIndex } from '../src/service/tokens.js';

const record = (name: string, secret: string, role: 'admin' | 'read' = 'admin'): TokenRecord => ({ name, role, sha256: hashToken(secret), createdAt: '2026-01-01T00:00:00.000Z' });

test('TokenIndex: revisions sharing a token list share the index; a new list, or one edited in place, is looked at again', () => {
  const index = new TokenIndex();
  const first = initialState(new Date(0));
  first.api.tokens.push(record('a', 'secret-a'));
  const r1 = freezeState(first);
  assert.deepEqual(index.authenticate(r1, 'secret-a'), { name: 'a', role: 'admin' });
  // A later revision with the same (frozen) list: the same answers.
  const r2 = freezeState({ ...r1, revision: 2 });
  assert.deepEqual(index.authenticate(r2, 'secret-a'), { name: 'a', role: 'admin' });
  assert.equal(index.authenticate(r2, 'secret-b'), undefined);
  // A revision that revokes a and adds b.
  const r3 = freezeState({ ...r2, revision: 3, api: { tokens: [record('b', 'secret-b', 'read')] } });
  assert.equal(index.authenticate(r3, 'secret-a'), undefined);
  assert.deepEqual(index.authenticate(r3, 'secret-b'), { name: 'b', role: 'read' });
  // A list that is not frozen may change in place: each call looks at it as it is.
  const open: DesiredState = { ...r3, revision: 4, api: { tokens: [record('c', 'secret-c')] } };
  assert.deepEqual(index.authenticate(open, 'secret-c'), { name: 'c', role: 'admin' });
  open.api.tokens.length = 0;
  assert.equal(index.authenticate(open, 'secret-c'), undefined);
});
