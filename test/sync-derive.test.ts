/** The secondary's derivation of a primary's snapshot (src/sync/derive.ts), unicast peer swap in particular. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VIP_DEFAULTS, initialState, type DesiredState, type VipConfig } from '../src/config/model.js';
import { applySnapshot, type Snapshot } from '../src/sync/derive.js';

const vip = (over: Partial<VipConfig>): VipConfig => ({ ...VIP_DEFAULTS, interface: 'em0', vhid: 1, addresses: ['192.0.2.50/26'], ...over }) as VipConfig;

function secondary(localAddresses: string[]): DesiredState {
  const s = initialState(new Date(0));
  s.sync = { ...s.sync, role: 'secondary', localAddresses };
  return s;
}

const snap = (vips: VipConfig[], localAddresses: string[]): Snapshot => ({ revision: 7, vips, carp: { enabled: true, preempt: true }, localAddresses });

test('unicast peers are swapped per family, the primary\'s address chosen by the subnet of its peer, prefixes not on octet boundaries included', () => {
  const primaryVip = vip({ mode: 'unicast', peer: '192.0.2.61', peer6: '2001:db8:0:1::11', addresses: ['192.0.2.50/26', '2001:db8:0:1::50/64'] });
  // 192.0.2.10 is in another /28 than the peer 192.0.2.61 (.48-.63); 192.0.2.60 is in the same one.
  const next = applySnapshot(secondary(['192.0.2.61/28', '2001:db8:0:1::11/64']), snap([primaryVip], ['192.0.2.10/28', '192.0.2.60/28', '2001:db8:0:2::10/64', '2001:db8:0:1::10/64']));
  assert.equal(next.vips[0].peer, '192.0.2.60');
  assert.equal(next.vips[0].peer6, '2001:db8:0:1::10');
  assert.equal(next.sync.appliedRevision, 7);
});

test('a unicast peer that cannot be swapped refuses the whole snapshot with the reason', () => {
  const primaryVip = vip({ mode: 'unicast', peer: '192.0.2.61' });
  assert.throws(() => applySnapshot(secondary([]), snap([primaryVip], ['192.0.2.10/28'])), /no address in that subnet/);
  assert.throws(() => applySnapshot(secondary(['192.0.2.62/28']), snap([primaryVip], ['192.0.2.60/28'])), /not one of this node's sync.localAddresses/);
});
