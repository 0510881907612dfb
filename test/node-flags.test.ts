/**
 * carpd's Node.js flags: every launcher runs the daemon with the same ones, so what
 * `npm run bench:memory` measures (`npm start`'s flags) is what an installed carpd runs with.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');

/** The words between `node` and the entry point of `npm start`. */
function startFlags(): string[] {
  const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start;
  const m = /^node((?: --[^ ]+)*) dist\/daemon\/main\.js$/.exec(start);
  assert.ok(m, `npm start is "${start}": expected "node [flags] dist/daemon/main.js"`);
  return m[1].trim().split(' ').filter(Boolean);
}

test('npm start, bin/carpd.js and the rc.d script run node with the same flags, which cap the young generation', () => {
  const flags = startFlags();
  assert.ok(flags.includes('--max-semi-space-size=2'), flags.join(' '));

  const shebang = read('bin/carpd.js').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S node ${flags.join(' ')}`);

  const rcd = read('rc.d/carpd');
  const m = /^: "\$\{carpd_node_flags=([^}]*)\}"$/m.exec(rcd);
  assert.ok(m, 'rc.d/carpd sets no default for carpd_node_flags');
  assert.deepEqual(m[1].split(' '), flags);
  assert.match(rcd, /command_args="\$\{_carpd_daemon\} \$\{carpd_node\} \$\{carpd_node_flags\} \$\{carpd_main\}/);
  assert.match(rcd, new RegExp(`# carpd_node_flags \\(str\\)[^\\n]*\\n#\\s+\\[${flags.join(' ').replace(/[-=]/g, '\\$&')}\\]`));
});
