/**
 * Runs VRRPv3 engine scenario files (test/engine/vrrp-scenarios/*.txt) in the format of the CARP
 * ones, on the same simulated LAN (lan.ts): a prose header of "#" lines, then commands for one
 * or more nodes on a simulated LAN with a manual clock. Each group of commands is followed by
 * "----" and the output it must produce, up to the next blank line. UPDATE_SCENARIOS=1 rewrites
 * those blocks.
 *
 * Commands (times in ms, fractions allowed):
 *   node NAME [vrid=1] [priority=100] [interval=100] [preempt=true] [demotion=0] [addr=192.0.2.x]
 *                            a node (in INIT); interval in centiseconds; addr is its primary
 *                            address, by default 192.0.2.11 for the first node, .12 for the next…
 *   up NAME…                 the VRID can run (link up, addresses)
 *   down NAME [reason…]      link down / no addresses
 *   leave NAME               shutdown (a MASTER sends priority 0)
 *   force NAME backup|master the administrator moves the VRID
 *   set NAME key=value…      settings change (priority, interval, preempt, demotion, addr)
 *   kill NAME…               the node dies: sends nothing, hears nothing, its timers are gone
 *   boot NAME…               a killed node starts again with a fresh engine (INIT)
 *   partition A B…           cut the links A–B (both ways);  isolate A: cut all of A's links
 *   heal [A B]               restore one link, or all
 *   latency MS               delivery delay of every advertisement (default 0)
 *   trace on|off             also print sends and VIP installs/removals
 *   run MS                   advance the clock, processing timers and deliveries in time order
 *   state                    print every node's state, advertised priority and intervals
 * Transitions print as "t=MS NAME: FROM -> TO [cause] (reason)". Events due at the same instant
 * are processed in the order they were scheduled; events due now are processed after every
 * command.
 */
import { vrrpAdvertisedPriority, vrrpInitialState, vrrpMasterDownIntervalMs, vrrpStep } from '../../src/engine/vrrp.js';
import type { VrrpAdvert, VrrpSettings, VrrpState, VrrpTransitionCause } from '../../src/engine/vrrp-types.js';
import { NS_PER_MS, eachSetting, flag, fmtMs, runScenarioOn, type ScenarioResult, type SimEngine } from './lan.js';

function applySettings(s: VrrpSettings, kvs: string[]): VrrpSettings {
  const n = { ...s };
  eachSetting(kvs, (k, v) => {
    if (k === 'preempt') n.preempt = flag(k, v);
    else if (k === 'vrid' || k === 'priority' || k === 'demotion') n[k] = Number(v);
    else if (k === 'interval') n.intervalCs = Number(v);
    else if (k === 'addr') n.primaryAddress = v;
    else return false;
    return true;
  });
  return n;
}

type VrrpTransition = { from: string; to: string; cause: VrrpTransitionCause; reason: string };

/** A node's `state` line: its state, advertised priority and intervals. */
function describe(e: VrrpState): string {
  const p = vrrpAdvertisedPriority(e.settings);
  if (e.state === 'MASTER') return `MASTER priority=${p} interval=${e.settings.intervalCs}`;
  if (e.state === 'INIT') return 'INIT';
  const down = vrrpMasterDownIntervalMs(p, e.masterAdverIntervalCs);
  return `BACKUP priority=${p} master_adver_interval=${e.masterAdverIntervalCs} master_down=${fmtMs(down * NS_PER_MS)}`;
}

/** VRRPv3 on the LAN: multicast to 224.0.0.18 reaches every node of the VRID, from its primary address. */
export const vrrpLanEngine: SimEngine<VrrpSettings, VrrpState, VrrpAdvert, VrrpAdvert, VrrpTransition> = {
  create(kvs, index) {
    const defaults: VrrpSettings = {
      vrid: 1,
      priority: 100,
      intervalCs: 100,
      preempt: true,
      demotion: 0,
      primaryAddress: `192.0.2.${11 + index}`,
    };
    return { settings: applySettings(defaults, kvs) };
  },
  update: applySettings,
  init: (node, nowMs) => vrrpInitialState(node.settings, nowMs),
  step: vrrpStep,
  group: (settings) => settings.vrid,
  source: (node) => node.settings.primaryAddress,
  advert: (a) => ({ priority: a.priority, intervalCs: a.intervalCs }),
  showSend: (a) => `send priority=${a.priority} interval=${a.intervalCs}`,
  showTransition: (a) => `${a.from} -> ${a.to} [${a.cause}] (${a.reason})`,
  showState: describe,
};

export function runVrrpScenario(text: string): ScenarioResult {
  return runScenarioOn(vrrpLanEngine, text);
}
