import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalCidr, canonicalIp, cidrOf, ipBytes, isMulticast } from '../src/wire/address.js';

test('IPv6 addresses are canonicalised per RFC 5952', () => {
  const cases: [string, string][] = [
    ['2001:0DB8:0:0::A', '2001:db8::a'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::192.0.2.1', '2001:db8::c000:201'],
    ['::', '::'],
    ['1::', '1::'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
  ];
  for (const [input, want] of cases) assert.equal(canonicalIp(input)?.address, want, input);
});

test('invalid addresses and prefixes are refused', () => {
  for (const bad of ['192.0.2.300', '192.0.2', 'fe80::1%em0', '2001:db8:::1', 'x', '']) assert.equal(canonicalIp(bad), undefined, bad);
  for (const bad of ['192.0.2.1', '192.0.2.1/33', '192.0.2.1/024', '2001:db8::1/129', '/24', '192.0.2.1/']) assert.equal(canonicalCidr(bad), undefined, bad);
  assert.equal(canonicalCidr('2001:DB8::1/64'), '2001:db8::1/64');
});

test('bytes and multicast detection', () => {
  assert.equal(ipBytes('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
  assert.equal(ipBytes('192.0.2.1').toString('hex'), 'c0000201');
  assert.equal(isMulticast('224.0.0.18'), true);
  assert.equal(isMulticast('ff02::12'), true);
  assert.equal(isMulticast('192.0.2.1'), false);
});

test('cidrOf and canonicalIp: the canonical text of an answer gets the same answer, remembered once', () => {
  const c = cidrOf('2001:0DB8:0:0::00A1/64');
  assert.deepEqual(c, { family: 6, address: '2001:db8::a1', prefix: 64 });
  assert.equal(cidrOf('2001:db8::a1/64'), c, 'the canonical text answers from the same memory');
  assert.equal(canonicalCidr('2001:db8::a1/64'), '2001:db8::a1/64');
  const ip = canonicalIp('2001:DB8:0::7');
  assert.equal(canonicalIp('2001:db8::7'), ip);
  assert.equal(ip?.address, '2001:db8::7');
  // What is not an address stays so, whatever was seen before.
  assert.equal(cidrOf('2001:db8::a1'), undefined);
  assert.equal(cidrOf('2001:db8::a1/129'), undefined);
  assert.equal(canonicalIp('2001:db8::7%em0'), undefined);
});
