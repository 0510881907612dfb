import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES } from '../src/errors.js';

test('every error code is in the README table with its HTTP status, and the table has no others', () => {
  const readme = readFileSync('README.md', 'utf8');
  const rows = new Map([...readme.matchAll(/^\| `(CARPD_ERR_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]));
  for (const [code, { status }] of Object.entries(ERROR_CODES)) assert.equal(rows.get(code), status, `${code} in README`);
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort());
});
