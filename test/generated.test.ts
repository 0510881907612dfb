import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';

test('src/api/generated/carpd.ts is up to date with openapi/carpd.yaml (run npm run gen:api)', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-gen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'carpd.ts');
  execFileSync(path.resolve('node_modules/.bin/openapi-typescript'), ['openapi/carpd.yaml', '--default-non-nullable=false', '-o', out], { stdio: 'pipe' });
  assert.equal(readFileSync('src/api/generated/carpd.ts', 'utf8'), readFileSync(out, 'utf8'));
});

test('openapi/carpd.json, the spec carpd reads, is openapi/carpd.yaml as JSON (run npm run gen:api)', () => {
  assert.deepEqual(JSON.parse(readFileSync('openapi/carpd.json', 'utf8')), parse(readFileSync('openapi/carpd.yaml', 'utf8')));
});
