import type { components } from "../api/generated/carpd.js";
import { expectArgs } from "./args.js";
import { ok, printJson } from "./client.js";
import type { Command } from "./command.js";
import { dash, fields, table, yesNo } from "./table.js";

type Status = components["schemas"]["Status"];
type PfsyncStatus = components["schemas"]["PfsyncStatus"];

export function pfsyncLine(p: PfsyncStatus): string {
  const parts = [p.running ? "running" : "not running"];
  if (p.syncdev) parts.push(`syncdev ${p.syncdev}`);
  if (p.syncpeer) parts.push(`syncpeer ${p.syncpeer}`);
  if (p.maxupd !== undefined) parts.push(`maxupd ${p.maxupd}`);
  if (p.defer !== undefined) parts.push(`defer ${yesNo(p.defer)}`);
  if (p.version !== undefined) parts.push(`version ${p.version}`);
  parts.push(p.bulkUpdateDone ? "bulk update done" : "bulk update pending");
  return parts.join(", ");
}

type PfStatus = components["schemas"]["PfStatus"];

/** pf's state table in one line; an older carpd sends no `pf` (undefined), a node without pf null. */
export function pfLine(p: PfStatus | null | undefined): string {
  if (p === undefined) return "not reported (an older carpd)";
  if (p === null) return "none on this node (no pf: backend without pf, or pf.ko not loaded)";
  const bulk = p.pfsyncBulkUpdateDone === null ? "" : p.pfsyncBulkUpdateDone ? ", pfsync bulk update done" : ", pfsync bulk update PENDING";
  return `${p.running ? "enabled" : "DISABLED"}, ${p.states} states (inserts ${p.stateInserts}, removals ${p.stateRemovals}, searches ${p.stateSearches})${bulk}`;
}

export function storeLine(h: Status["store"]): string {
  const e = h.lastError;
  if (!e) return "state dir NOT WRITABLE: changes fail until it takes a write again";
  return `state dir NOT WRITABLE since ${e.at}: ${e.errno ?? e.detail} on ${e.path}; changes fail until it takes a write again`;
}

export function renderStatus(s: Status): string {
  const c = s.carp;
  const head = fields([
    ["node", `${s.node} (carpd ${s.version}, started ${s.startedAt})`],
    ["backend", `${s.backend.name}${s.backend.description ? ` (${s.backend.description})` : ""}`],
    ["revision", String(s.revision)],
    // Only when the state directory refused the last write (an older carpd sends no `store`).
    ...(s.store && !s.store.writable ? [["store", storeLine(s.store)] as [string, string]] : []),
    [
      "carp",
      `enabled ${yesNo(c.enabled)}, preempt ${yesNo(c.preempt)}, ` +
        `maintenance ${yesNo(c.maintenance)}, demotion ${c.demotion}` +
        (c.temporarilyDisabled ? ", TEMPORARILY DISABLED (until re-enabled or restarted)" : ""),
    ],
  ]);
  // The MAC column only where the backend reports MACs (not the memory backend).
  const macs = s.vhids.some((v) => v.mac !== undefined);
  const macOf = (v: (typeof s.vhids)[number]) => (v.mac === undefined ? "-" : `${v.mac}${v.mac6 ? `,${v.mac6}` : ""}${v.virtualMac ? " (virtual)" : ""}`);
  const vhids = s.vhids.length
    ? table(
        ["INTERFACE", "VHID", "STATE", "SINCE", "REASON", "ADVBASE", "ADVSKEW", ...(macs ? ["MAC"] : [])],
        s.vhids.map((v) => [
          v.interface,
          String(v.vhid),
          v.state,
          v.since,
          dash(v.reason),
          // A vrrpv3 vhid shows its interval and priority where a carp vhid shows advbase and advskew.
          v.protocol === "vrrpv3" ? `${v.vrrpInterval} cs` : String(v.advbase),
          v.protocol === "vrrpv3"
            ? `prio ${v.vrrpPriority}`
            : v.effectiveSkew !== v.advskew
              ? `${v.advskew} (effective ${v.effectiveSkew})`
              : String(v.advskew),
          ...(macs ? [macOf(v)] : []),
        ]),
      )
    : "no vhids configured";
  return `${head}\n\n${vhids}\n\npfsync: ${pfsyncLine(s.pfsync)}\npf: ${pfLine(s.pf)}`;
}

export const statusCommands: Command[] = [
  {
    words: ["status"],
    synopsis: "",
    summary: "live state of this node: carp globals, every vhid, pfsync, pf's state table",
    async run(ctx, args) {
      expectArgs("status", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/status"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderStatus(data));
    },
  },
];
