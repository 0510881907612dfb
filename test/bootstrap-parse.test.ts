import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { parseText } from '../src/daemon/bootstrap.js';

test('a JSON bootstrap file reads as the YAML parser reads it', async () => {
  const texts = [
    JSON.stringify({ vips: [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24', '2001:db8::10/64'], advskew: 0, password: 'p"w\\d\u00e9\ud83d\ude00' }], carp: { preempt: true }, pfsync: { enabled: false } }, null, 2),
    '\n  {"vips": [], "x": [1, -0.5, 1e3, 12345678901234567890, true, false, null, {"a": {}, "b": [[], {}]}], "escapes": "\\u0041\\/\\n\\t"}\n',
    '[{"a": 1}, {"a": 2}]',
  ];
  for (const text of texts) assert.deepEqual(await parseText(text), parse(text), text);
});

test('a key twice in one JSON object is refused as the YAML parser refuses it; the same key in two objects is not', async () => {
  await assert.rejects(parseText('{"vips": [], "carp": {"preempt": true, "preempt": false}}'), /unique/);
  await assert.rejects(parseText('{"vips": [], "v\\u0069ps": []}'), /unique/);
  assert.deepEqual(await parseText('{"a": {"k": 1}, "b": {"k": 2}, "k": [{"k": 3}, {"k": 4}]}'), { a: { k: 1 }, b: { k: 2 }, k: [{ k: 3 }, { k: 4 }] });
});

test('YAML, and text that is not JSON, go to the YAML parser', async () => {
  assert.deepEqual(await parseText('vips:\n  - interface: em0\n    vhid: 1\n'), { vips: [{ interface: 'em0', vhid: 1 }] });
  assert.deepEqual(await parseText('{vips: [], carp: {preempt: true}} # flow YAML'), { vips: [], carp: { preempt: true } });
  await assert.rejects(parseText('{"vips": [}'));
});
