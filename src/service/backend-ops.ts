/**
 * The backend in planning terms: its live state as a planning snapshot, one planned step
 * applied on its own, and the capabilities a change needs.
 */
import { CarpdError } from '../errors.js';
import type { PfsyncConfig, VipConfig } from '../config/model.js';
import type { KernelBackend, LiveVhid, VhidParams } from '../kernel/backend.js';
import { runStep } from '../kernel/batch.js';
import type { Snapshot, Step } from './plan.js';

/** The live state in planning terms. */
export async function readSnapshot(backend: KernelBackend): Promise<Snapshot> {
  const [vhids, g, maintenance, pfsync] = await Promise.all([backend.listVhids(), backend.getCarpGlobals(), backend.getMaintenance(), backend.getPfsync()]);
  return {
    vhids: vhids.map((v) => ({ interface: v.interface, vhid: v.vhid, params: paramsOf(v), addresses: v.addresses })),
    carp: { allow: g.allow, preempt: g.preempt },
    maintenance,
    pfsync: { syncdev: pfsync.syncdev, syncpeer: pfsync.syncpeer, maxupd: pfsync.maxupd, defer: pfsync.defer, version: pfsync.version },
  };
}

/** A live vhid's parameters in planning terms; the VRRP fields only for a vrrpv3 vhid, as targetOf makes them. */
function paramsOf(v: LiveVhid): VhidParams {
  const p: VhidParams = { advbaseSec: v.advbaseSec, advskew: v.advskew, key: v.key, peer: v.peer, peer6: v.peer6 };
  if (v.protocol === 'vrrpv3') Object.assign(p, { protocol: 'vrrpv3', vrrpPriority: v.vrrpPriority, vrrpIntervalCs: v.vrrpIntervalCs });
  if (v.macMode !== undefined) p.macMode = v.macMode;
  return p;
}

/** One planned step through the backend's single-step method (a planned Step is a BackendStep). */
export function applyStep(b: KernelBackend, s: Step): Promise<void> {
  return runStep(b, s);
}

/** The backend's capabilities against the VIPs a change brings and its pfsync settings, if it changes them. */
export function checkCapabilities(backend: KernelBackend, vips: readonly VipConfig[], pfsync: PfsyncConfig | undefined): void {
  const caps = backend.capabilities();
  for (const v of vips) {
    if (v.mode === 'unicast' && !caps.unicast) {
      throw new CarpdError('CARPD_ERR_UNSUPPORTED', `${v.interface} vhid ${v.vhid}: unicast mode needs FreeBSD 14 or later (carp netlink); this ${backend.name} backend only does multicast`, { errors: [{ path: `/vips/${v.interface}/${v.vhid}/mode`, message: 'unicast is not supported here' }] });
    }
    if (v.protocol === 'vrrpv3' && !caps.vrrpv3) {
      throw new CarpdError('CARPD_ERR_UNSUPPORTED', `${v.interface} vhid ${v.vhid}: the ${backend.name} backend cannot run VRRPv3 vhids; use protocol carp`, { errors: [{ path: `/vips/${v.interface}/${v.vhid}/protocol`, message: 'vrrpv3 is not supported here' }] });
    }
    if (v.macMode !== undefined && !caps.macModes?.includes(v.macMode)) {
      const can = caps.macModes?.length ? `it answers with ${caps.macModes.join(' or ')} MACs only${backend.name === 'freebsd' ? ' (carp(4) always uses the virtual MAC 00:00:5e:00:01:<vhid>)' : ''}` : 'it has no MAC modes';
      throw new CarpdError('CARPD_ERR_UNSUPPORTED', `${v.interface} vhid ${v.vhid}: the ${backend.name} backend cannot give a VIP macMode ${v.macMode}: ${can}; remove macMode (null) to use the node's default`, { errors: [{ path: `/vips/${v.interface}/${v.vhid}/macMode`, message: `macMode ${v.macMode} is not supported here` }] });
    }
    if (!caps.ipv6 && v.addresses.some((a) => a.includes(':'))) {
      throw new CarpdError('CARPD_ERR_UNSUPPORTED', `${v.interface} vhid ${v.vhid}: the ${backend.name} backend has no IPv6 support`);
    }
  }
  if (pfsync?.enabled && !caps.pfsyncVersions.includes(pfsync.version)) {
    throw new CarpdError('CARPD_ERR_UNSUPPORTED', `pfsync version ${pfsync.version} is not supported by this kernel (supported: ${caps.pfsyncVersions.join(', ') || 'none'})`);
  }
}
