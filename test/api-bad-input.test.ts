import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ErrorCode } from '../src/errors.js';
import { READ_TOKEN, makeHarness, storedBytes, type Harness } from './helpers/harness.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

interface Case {
  name: string;
  method: Method;
  url: string;
  body?: unknown;
  raw?: string;
  contentType?: string;
  headers?: Record<string, string>;
  token?: string | null;
  status: number;
  code: ErrorCode;
  /** What the detail must say, where the wording matters to the client. */
  detail?: RegExp;
}

/** A VIP create body that is valid on its own (em0 gets its next free vhid). */
const vip = (extra: Record<string, unknown> = {}, drop: string[] = []) => {
  const b: Record<string, unknown> = { interface: 'em0', addresses: ['192.0.2.50/24'], ...extra };
  for (const k of drop) delete b[k];
  return b;
};
const post = (name: string, body: unknown, status: number, code: ErrorCode): Case => ({ name, method: 'post', url: '/v1/vips', body, status, code });
const V = 'CARPD_ERR_VALIDATION';

const CASES: Case[] = [
  // Ranges and types the schema guards.
  post('vhid 0', vip({ vhid: 0 }), 400, V),
  post('vhid 256', vip({ vhid: 256 }), 400, V),
  post('vhid "1" as a string', vip({ vhid: '1' }), 400, V),
  post('vhid 1.5', vip({ vhid: 1.5 }), 400, V),
  post('advskew 255', vip({ advskew: 255 }), 400, V),
  post('advskew -1', vip({ advskew: -1 }), 400, V),
  post('advbase 0', vip({ advbase: 0 }), 400, V),
  post('advbase 256', vip({ advbase: 256 }), 400, V),
  post('advbase 1.5', vip({ advbase: 1.5 }), 400, V),
  post('advskew "10" as a string', vip({ advskew: '10' }), 400, V),
  post('nosync "yes"', vip({ nosync: 'yes' }), 400, V),
  post('addresses as a string', vip({ addresses: '192.0.2.50/24' }), 400, V),
  post('an object among the addresses', vip({ addresses: [{ cidr: '192.0.2.50/24' }] }), 400, V),
  post('empty addresses', vip({ addresses: [] }), 400, V),
  post('missing addresses', vip({}, ['addresses']), 400, V),
  post('missing interface', vip({}, ['interface']), 400, V),
  post('interface "em0!"', vip({ interface: 'em0!' }), 400, V),
  post('interface ""', vip({ interface: '' }), 400, V),
  post('interface of 16 characters', vip({ interface: 'abcdefghijklmnop' }), 400, V),
  post('interface starting with a digit', vip({ interface: '0em' }), 400, V),
  post('mode "broadcast"', vip({ mode: 'broadcast' }), 400, V),
  post('description of 256 characters', vip({ description: 'd'.repeat(256) }), 400, V),
  post('password of 20 characters', vip({ password: 'p'.repeat(20) }), 400, V),
  post('password of 30 characters', vip({ password: 'p'.repeat(30) }), 400, V),
  post('empty password', vip({ password: '' }), 400, V),
  post('unknown top-level field', vip({ colour: 'red' }), 400, V),
  post('response-only field hasPassword', vip({ hasPassword: true }), 400, V),
  post('unknown nested field (response-only live)', vip({ live: { state: 'MASTER' } }), 400, V),
  post('a JSON array body', [vip()], 400, V),
  { name: 'empty body', method: 'post', url: '/v1/vips', raw: '', status: 400, code: V },
  // Semantic checks on the whole document.
  post('address 192.0.2.300/24', vip({ addresses: ['192.0.2.300/24'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('address without prefix 192.0.2.1', vip({ addresses: ['192.0.2.1'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('prefix /33', vip({ addresses: ['192.0.2.1/33'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('not-an-ip/24', vip({ addresses: ['not-an-ip/24'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('IPv6 prefix /129', vip({ addresses: ['2001:db8::1/129'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('multicast VIP address', vip({ addresses: ['224.0.0.18/24'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('IPv6 multicast VIP address', vip({ addresses: ['ff02::1/64'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('unspecified VIP address', vip({ addresses: ['0.0.0.0/0'] }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('vhid 1 again on em0', vip({ vhid: 1 }), 409, 'CARPD_ERR_VHID_EXISTS'),
  post('the address of em0 vhid 1 on another vhid', vip({ vhid: 2, addresses: ['192.0.2.10/24'] }), 409, 'CARPD_ERR_ADDRESS_IN_USE'),
  post('the address of em0 vhid 1 with another prefix on em1', vip({ interface: 'em1', addresses: ['192.0.2.10/25'] }), 409, 'CARPD_ERR_ADDRESS_IN_USE'),
  post('the same address twice in one VIP', vip({ addresses: ['192.0.2.60/24', '192.0.2.60/24'] }), 422, 'CARPD_ERR_ADDRESS_DUPLICATE'),
  post('the same IPv6 address twice in two spellings', vip({ addresses: ['2001:db8::60/64', '2001:DB8:0::60/64'] }), 422, 'CARPD_ERR_ADDRESS_DUPLICATE'),
  post('unicast without peer', vip({ mode: 'unicast' }), 422, 'CARPD_ERR_PEER_REQUIRED'),
  post('unicast IPv6 without peer6', vip({ mode: 'unicast', addresses: ['2001:db8::50/64'] }), 422, 'CARPD_ERR_PEER_REQUIRED'),
  post('multicast with peer', vip({ peer: '198.51.100.2' }), 422, 'CARPD_ERR_PEER_NOT_ALLOWED'),
  post('IPv6 peer in "peer"', vip({ mode: 'unicast', peer: '2001:db8::2' }), 422, 'CARPD_ERR_PEER_FAMILY'),
  post('IPv4 peer in "peer6"', vip({ mode: 'unicast', peer: '198.51.100.2', peer6: '198.51.100.3' }), 422, 'CARPD_ERR_PEER_FAMILY'),
  post('peer that is not an address', vip({ mode: 'unicast', peer: 'nope' }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('multicast peer', vip({ mode: 'unicast', peer: '224.0.0.18' }), 422, 'CARPD_ERR_INVALID_ADDRESS'),
  post('10-character password of 20 bytes', vip({ password: 'é'.repeat(10) }), 422, 'CARPD_ERR_PASSWORD_TOO_LONG'),
  post('password with a NUL', vip({ password: 'ab\u0000cd' }), 422, 'CARPD_ERR_INVALID_VALUE'),
  post('an interface the kernel does not have', vip({ interface: 'em9' }), 422, 'CARPD_ERR_INTERFACE_NOT_FOUND'),
  // Body framing.
  { name: 'body over 64 KiB', method: 'post', url: '/v1/vips', body: vip({ description: 'x'.repeat(70 * 1024) }), status: 413, code: 'CARPD_ERR_BODY_TOO_LARGE' },
  { name: 'malformed JSON', method: 'post', url: '/v1/vips', raw: '{"interface": "em0",', status: 400, code: 'CARPD_ERR_MALFORMED_JSON' },
  { name: 'JSON null body', method: 'post', url: '/v1/vips', raw: 'null', status: 400, code: 'CARPD_ERR_MALFORMED_JSON' },
  { name: 'text/plain body', method: 'post', url: '/v1/vips', raw: 'interface=em0', contentType: 'text/plain', status: 415, code: 'CARPD_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'no body and no Content-Type', method: 'post', url: '/v1/vips', status: 415, code: 'CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', detail: /no body or no Content-Type/ },
  { name: 'XML body', method: 'post', url: '/v1/vips', raw: '<vip/>', contentType: 'application/xml', status: 415, code: 'CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', detail: /application\/xml/ },
  { name: 'merge patch on POST', method: 'post', url: '/v1/vips', raw: JSON.stringify(vip()), contentType: 'application/merge-patch+json', status: 415, code: 'CARPD_ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'latin1 charset', method: 'post', url: '/v1/vips', raw: JSON.stringify(vip()), contentType: 'application/json; charset=latin1', status: 415, code: 'CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', detail: /UTF-8/ },
  { name: 'gzip body that does not inflate', method: 'post', url: '/v1/vips', raw: JSON.stringify(vip()), headers: { 'Content-Encoding': 'gzip' }, status: 400, code: 'CARPD_ERR_MALFORMED_JSON', detail: /decompress/ },
  { name: 'malformed merge patch', method: 'patch', url: '/v1/vips/em0/1', raw: '{"advskew": }', contentType: 'application/merge-patch+json', status: 400, code: 'CARPD_ERR_MALFORMED_JSON' },
  // Preconditions.
  { name: 'stale If-Match', method: 'post', url: '/v1/vips', body: vip(), headers: { 'If-Match': '"0"' }, status: 412, code: 'CARPD_ERR_PRECONDITION_FAILED' },
  { name: 'If-Match that is no revision', method: 'patch', url: '/v1/vips/em0/1', body: { advskew: 1 }, headers: { 'If-Match': 'abc' }, status: 412, code: 'CARPD_ERR_PRECONDITION_FAILED' },
  { name: 'If-Match over 200 characters', method: 'delete', url: '/v1/vips/em0/1', headers: { 'If-Match': `"${'1'.repeat(210)}"` }, status: 400, code: V },
  // One VIP.
  { name: 'PATCH with an empty object', method: 'patch', url: '/v1/vips/em0/1', body: {}, status: 400, code: V },
  { name: 'PATCH of an unknown VIP', method: 'patch', url: '/v1/vips/em0/99', body: { advskew: 1 }, status: 404, code: 'CARPD_ERR_VIP_NOT_FOUND' },
  { name: 'PATCH with an unknown field', method: 'patch', url: '/v1/vips/em0/1', body: { vhid: 2 }, status: 400, code: V },
  { name: 'PATCH addresses []', method: 'patch', url: '/v1/vips/em0/1', body: { addresses: [] }, status: 400, code: V },
  { name: 'PATCH to unicast without a peer', method: 'patch', url: '/v1/vips/em0/1', body: { mode: 'unicast' }, status: 422, code: 'CARPD_ERR_PEER_REQUIRED' },
  { name: 'PATCH password ""', method: 'patch', url: '/v1/vips/em0/1', body: { password: '' }, status: 400, code: V },
  { name: 'PUT without addresses', method: 'put', url: '/v1/vips/em0/1', body: { advskew: 1 }, status: 400, code: V },
  { name: 'PUT with interface in the body', method: 'put', url: '/v1/vips/em0/1', body: { interface: 'em1', addresses: ['192.0.2.10/24'] }, status: 400, code: V },
  { name: 'PUT on vhid 0 in the path', method: 'put', url: '/v1/vips/em0/0', body: { addresses: ['192.0.2.70/24'] }, status: 400, code: V },
  { name: 'GET of vhid "abc"', method: 'get', url: '/v1/vips/em0/abc', status: 400, code: V },
  { name: 'PUT on interface "em0!" in the path', method: 'put', url: '/v1/vips/em0!/2', body: { addresses: ['192.0.2.70/24'] }, status: 400, code: V },
  { name: 'DELETE of an unknown VIP', method: 'delete', url: '/v1/vips/em0/2', status: 404, code: 'CARPD_ERR_VIP_NOT_FOUND' },
  { name: 'force state "init"', method: 'put', url: '/v1/vips/em0/1/state', body: { state: 'init' }, status: 400, code: V },
  { name: 'force state "MASTER" in capitals', method: 'put', url: '/v1/vips/em0/1/state', body: { state: 'MASTER' }, status: 400, code: V },
  { name: 'force state without a state', method: 'put', url: '/v1/vips/em0/1/state', body: {}, status: 400, code: V },
  { name: 'force state of an unknown VIP', method: 'put', url: '/v1/vips/em1/1/state', body: { state: 'master' }, status: 404, code: 'CARPD_ERR_VIP_NOT_FOUND' },
  // Query parameters.
  { name: 'unknown query parameter on POST', method: 'post', url: '/v1/vips?foo=1', body: vip(), status: 400, code: V },
  { name: 'unknown query parameter on GET', method: 'get', url: '/v1/vips?foo=1', status: 400, code: V },
  { name: 'dryRun=maybe', method: 'post', url: '/v1/vips?dryRun=maybe', body: vip(), status: 400, code: V },
  { name: 'free vhid of "em0!"', method: 'get', url: '/v1/vhids/free?interface=em0!', status: 400, code: V },
  // CARP and pfsync.
  { name: 'maintenance {"enabled":"yes"}', method: 'put', url: '/v1/carp/maintenance', body: { enabled: 'yes' }, status: 400, code: V },
  { name: 'maintenance {}', method: 'put', url: '/v1/carp/maintenance', body: {}, status: 400, code: V },
  { name: 'PATCH /v1/carp {}', method: 'patch', url: '/v1/carp', body: {}, status: 400, code: V },
  { name: 'PATCH /v1/carp with maintenance', method: 'patch', url: '/v1/carp', body: { maintenance: true }, status: 400, code: V },
  { name: 'PATCH /v1/carp enabled 1', method: 'patch', url: '/v1/carp', body: { enabled: 1 }, status: 400, code: V },
  { name: 'pfsync maxupd 256', method: 'put', url: '/v1/pfsync', body: { enabled: true, syncdev: 'em1', maxupd: 256 }, status: 400, code: V },
  { name: 'pfsync version 1234', method: 'put', url: '/v1/pfsync', body: { enabled: true, syncdev: 'em1', version: 1234 }, status: 400, code: V },
  { name: 'pfsync syncpeer "x"', method: 'put', url: '/v1/pfsync', body: { enabled: true, syncdev: 'em1', syncpeer: 'x' }, status: 400, code: V },
  { name: 'pfsync syncdev "em1!"', method: 'put', url: '/v1/pfsync', body: { enabled: true, syncdev: 'em1!' }, status: 400, code: V },
  { name: 'pfsync without enabled', method: 'put', url: '/v1/pfsync', body: { syncdev: 'em1' }, status: 400, code: V },
  { name: 'pfsync syncpeer "not-an-ip"', method: 'put', url: '/v1/pfsync', body: { enabled: true, syncdev: 'em1', syncpeer: 'not-an-ip' }, status: 422, code: 'CARPD_ERR_INVALID_ADDRESS' },
  { name: 'pfsync IPv6 syncpeer with version 1301', method: 'put', url: '/v1/pfsync', body: { enabled: true, syncdev: 'em1', syncpeer: '2001:db8::2', version: 1301 }, status: 422, code: 'CARPD_ERR_INVALID_VALUE' },
  { name: 'pfsync enabled without syncdev', method: 'put', url: '/v1/pfsync', body: { enabled: true }, status: 422, code: 'CARPD_ERR_PFSYNC_SYNCDEV_REQUIRED' },
  // Config and tokens.
  { name: 'rollback to revision -1', method: 'post', url: '/v1/config/rollback', body: { revision: -1 }, status: 400, code: V },
  { name: 'rollback to revision "3"', method: 'post', url: '/v1/config/rollback', body: { revision: '3' }, status: 400, code: V },
  { name: 'rollback without a revision', method: 'post', url: '/v1/config/rollback', body: {}, status: 400, code: V },
  { name: 'rollback to a revision never made', method: 'post', url: '/v1/config/rollback', body: { revision: 42 }, status: 404, code: 'CARPD_ERR_REVISION_NOT_FOUND' },
  { name: 'token with role "root"', method: 'post', url: '/v1/tokens', body: { name: 'ops', role: 'root' }, status: 400, code: V },
  { name: 'token named "bad name"', method: 'post', url: '/v1/tokens', body: { name: 'bad name', role: 'read' }, status: 400, code: V },
  { name: 'token named "-x"', method: 'post', url: '/v1/tokens', body: { name: '-x', role: 'read' }, status: 400, code: V },
  { name: 'token without a role', method: 'post', url: '/v1/tokens', body: { name: 'ops' }, status: 400, code: V },
  { name: 'token with a secret of its own', method: 'post', url: '/v1/tokens', body: { name: 'ops', role: 'read', token: 'mine' }, status: 400, code: V },
  { name: 'token dry run (not offered)', method: 'post', url: '/v1/tokens?dryRun=true', body: { name: 'ops', role: 'read' }, status: 400, code: V },
  { name: 'token name taken', method: 'post', url: '/v1/tokens', body: { name: 'reader', role: 'read' }, status: 409, code: 'CARPD_ERR_TOKEN_EXISTS' },
  { name: 'revoke an unknown token', method: 'delete', url: '/v1/tokens/nobody', status: 404, code: 'CARPD_ERR_TOKEN_NOT_FOUND' },
  { name: 'revoke the last admin token', method: 'delete', url: '/v1/tokens/admin', status: 409, code: 'CARPD_ERR_LAST_ADMIN_TOKEN' },
  // Authentication.
  { name: 'change with a read token', method: 'post', url: '/v1/vips', body: vip(), token: READ_TOKEN, status: 403, code: 'CARPD_ERR_FORBIDDEN' },
  { name: 'change without a token', method: 'post', url: '/v1/vips', body: vip(), token: null, status: 401, code: 'CARPD_ERR_UNAUTHORIZED' },
  { name: 'change with a revoked-looking token', method: 'delete', url: '/v1/vips/em0/1', token: 'carpd_wrong', status: 401, code: 'CARPD_ERR_UNAUTHORIZED' },
];

/** Everything a bad request must leave alone: the stored files (config.json and the journal) and the backend. */
async function snapshot(h: Harness) {
  return {
    file: storedBytes(h.dir),
    backend: JSON.stringify([await h.backend.listVhids(), await h.backend.getCarpGlobals(), await h.backend.getMaintenance(), await h.backend.getPfsync()]),
  };
}

test('invalid requests are refused with their problem code and change nothing', async (t) => {
  assert.ok(CASES.length >= 45, `${CASES.length} cases`);
  assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length, 'case names are unique');
  const h = await makeHarness();
  t.after(() => h.close());
  const setup = await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] });
  assert.equal(setup.status, 201);

  for (const c of CASES) {
    await t.test(c.name, async () => {
      const before = await snapshot(h);
      const res = await h.api.call(c.method, c.url, { body: c.body, raw: c.raw, contentType: c.contentType, headers: c.headers, token: c.token });
      assert.equal(res.status, c.status, `${c.method.toUpperCase()} ${c.url}: ${res.text}`);
      assert.equal(res.body.code, c.code, res.body.detail);
      assert.equal(res.body.status, c.status);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      assert.equal(res.body.type, `urn:carpd:error:${c.code}`);
      if (c.detail) assert.match(res.body.detail, c.detail);
      const after = await snapshot(h);
      assert.ok(after.file.equals(before.file), 'config.json or the journal changed');
      assert.equal(after.backend, before.backend, 'the backend changed');
    });
  }

  // The existing VIP is still the only one, as it was made.
  const vips = await h.api.get('/v1/vips');
  assert.equal(vips.body.revision, 1);
  assert.deepEqual(vips.body.items.map((v: { interface: string; vhid: number; addresses: string[] }) => [v.interface, v.vhid, v.addresses]), [['em0', 1, ['192.0.2.10/24']]]);
});
