/**
 * Runs CARP engine scenario files (test/engine/scenarios/*.txt) on the simulated LAN of lan.ts,
 * which also describes the file format: a prose header of "#" lines, then commands for one or
 * more nodes on a simulated LAN with a manual clock. Each group of commands is followed by
 * "----" and the output it must produce, up to the next blank line. UPDATE_SCENARIOS=1 rewrites
 * those blocks.
 *
 * Commands (times in ms, fractions allowed):
 *   node NAME [vhid=1] [advbase=1] [advskew=0] [preempt=false] [demotion=0] [addr=NAME] [peer=NAME]
 *                            a node (in INIT); peer= makes it send unicast to that node only (§8)
 *   up NAME…                 the vhid can run (link up, addresses, carp allowed)
 *   down NAME [reason…]      link down / allow=0 / no addresses
 *   leave NAME               orderly shutdown (bow-out when MASTER)
 *   force NAME backup|master like `ifconfig … state backup`
 *   set NAME key=value…      settings change (advbase, advskew, preempt, demotion)
 *   kill NAME…               the node dies: sends nothing, hears nothing, its timers are gone
 *   boot NAME…               a killed node starts again with a fresh engine (INIT)
 *   partition A B…           cut the links A–B (both ways);  isolate A: cut all of A's links
 *   heal [A B]               restore one link, or all
 *   latency MS               delivery delay of every advertisement (default 0)
 *   trace on|off             also print sends and VIP installs/removals
 *   run MS                   advance the clock, processing timers and deliveries in time order
 *   state                    print every node's state
 * Events due at the same instant are processed in the order they were scheduled; events due
 * now are processed after every command.
 */
import { initialState, step } from '../../src/engine/engine.js';
import type { Advert, EngineState, VhidSettings } from '../../src/engine/types.js';
import { eachSetting, flag, runScenarioOn, type ScenarioResult, type SimEngine } from './lan.js';

function applySettings(s: VhidSettings, kvs: string[], extra: Record<string, string> = {}): VhidSettings {
  const n = { ...s };
  eachSetting(kvs, (k, v) => {
    if (k === 'preempt') n.preempt = flag(k, v);
    else if (k === 'vhid' || k === 'advskew' || k === 'demotion') n[k] = Number(v);
    else if (k === 'advbase') n.advbaseSec = Number(v);
    else if (k === 'addr' || k === 'peer') extra[k] = v;
    else return false;
    return true;
  });
  return n;
}

type CarpTransition = { from: string; to: string; reason: string };

/** CARP on the LAN: a vhid is the group; a node's address is its name unless addr= says otherwise. */
export const carpLanEngine: SimEngine<VhidSettings, EngineState, Advert, Advert, CarpTransition> = {
  create(kvs) {
    const extra: Record<string, string> = {};
    const settings = applySettings({ vhid: 1, advbaseSec: 1, advskew: 0, preempt: false, demotion: 0 }, kvs, extra);
    return { settings, addr: extra.addr, peer: extra.peer };
  },
  update: (settings, kvs) => applySettings(settings, kvs),
  init: (node, nowMs) => initialState(node.settings, BigInt(node.index + 1) * 0x5851f42d4c957f2dn, nowMs),
  step,
  group: (settings) => settings.vhid,
  source: (node) => node.addr ?? node.name,
  advert: (a) => ({ advbaseSec: a.advbaseSec, advskew: a.advskew, counter: a.counter }),
  showSend: (a, node) => `send advbase=${a.advbaseSec} skew=${a.advskew}${node.peer ? ` to ${node.peer}` : ''}`,
  showTransition: (a) => `${a.from} -> ${a.to} (${a.reason})`,
  showState: (engine) => engine.state,
};

export function runScenario(text: string): ScenarioResult {
  return runScenarioOn(carpLanEngine, text);
}
