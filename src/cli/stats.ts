import type { components } from "../api/generated/carpd.js";
import { expectArgs } from "./args.js";
import { ok, printJson } from "./client.js";
import type { Command } from "./command.js";
import { table } from "./table.js";

type Stats = components["schemas"]["Stats"];

/** The sysctl names an administrator would type, for the API's camel-case fields. */
const SYSCTL_NAMES: [keyof Stats["sysctls"], string][] = [
  ["carpLog", "net.inet.carp.log"],
  ["senderrDemotionFactor", "net.inet.carp.senderr_demotion_factor"],
  ["ifdownDemotionFactor", "net.inet.carp.ifdown_demotion_factor"],
  ["pfsyncCarpDemotionFactor", "net.pfsync.carp_demotion_factor"],
];

/**
 * Only the counters that moved: most of the sixteen stay at zero on a healthy node, and a
 * non-zero drop counter is what one looks for. --json has them all.
 */
function counterTable(title: string, counters: Record<string, number>): string {
  const names = Object.keys(counters);
  if (names.length === 0) return `${title}: no counters kept by this backend`;
  const moved = names.filter((n) => counters[n] !== 0);
  if (moved.length === 0) return `${title}: all ${names.length} counters are zero`;
  return `${title}, non-zero only:\n${table(["COUNTER", "VALUE"], moved.map((n) => [n, String(counters[n])]))}`;
}

/** carpd's own log: what it wrote and what it had to drop (a full or stalled destination). */
function logLine(l: NonNullable<Stats["log"]>): string {
  const last = l.lastError !== undefined ? `; last error ${l.lastError}` : "";
  return `log: ${l.linesWritten} lines written, ${l.linesDropped} dropped, ${l.bytesQueued} bytes queued${last}`;
}

/** carpd's event loop: how late its timers run, and the stalls long enough to delay a vhid. */
function loopLine(l: NonNullable<Stats["eventLoop"]>): string {
  const last = l.lastStall ? `; last ${Math.round(l.lastStall.ms)} ms at ${l.lastStall.at}` : "";
  const d = l.delayMs;
  return `event loop: delay p50 ${d.p50.toFixed(1)} ms, p99 ${d.p99.toFixed(1)} ms, max ${d.max.toFixed(1)} ms; ${l.stalls} stall(s) over ${l.stallThresholdMs} ms${last}`;
}

export function renderStats(s: Stats): string {
  const sysctls = SYSCTL_NAMES.filter(([k]) => s.sysctls[k] !== undefined).map(([k, name]) => [name, String(s.sysctls[k])]);
  const parts = [
    `backend: ${s.backend}`,
    table(["SYSCTL", "VALUE"], sysctls),
    counterTable("carp (net.inet.carp.stats)", s.carp),
    s.pfsync
      ? counterTable(`pfsync (net.pfsync.stats, PFSYNC_ACT_MAX ${s.pfsync.actMax})`, s.pfsync.counters)
      : "pfsync: not available (pfsync(4) is not loaded)",
  ];
  if (s.log) parts.push(logLine(s.log));
  if (s.eventLoop) parts.push(loopLine(s.eventLoop));
  return parts.join("\n\n");
}

export const statsCommands: Command[] = [
  {
    words: ["stats"],
    synopsis: "",
    summary: "CARP and pfsync kernel counters (non-zero ones; --json for all), the demotion sysctls, carpd's log lines dropped and its event loop's delay and stalls",
    async run(ctx, args) {
      expectArgs("stats", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/stats"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderStats(data));
    },
  },
];
