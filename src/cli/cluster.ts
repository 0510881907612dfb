import type { components } from "../api/generated/carpd.js";
import { expectArgs } from "./args.js";
import { ok, printJson } from "./client.js";
import type { Command } from "./command.js";
import { table, yesNo } from "./table.js";

type Cluster = components["schemas"]["Cluster"];
type ClusterNode = components["schemas"]["ClusterNode"];

function name(n: ClusterNode): string {
  return n.node ?? "peer";
}

function revisionCell(n: ClusterNode): string {
  if (n.revision === undefined) return "?";
  return n.role === "secondary" && n.appliedRevision
    ? `${n.revision} (primary's ${n.appliedRevision} applied)`
    : String(n.revision);
}

function pfsyncCell(n: ClusterNode): string {
  if (!n.pfsync) return "?";
  if (!n.pfsync.enabled) return "off";
  if (!n.pfsync.running) return "NOT running";
  return n.pfsync.bulkUpdateDone ? "running" : "running, bulk update pending";
}

/** pf's state count on a node: "?" unknown (absent: not reached, not read, an older carpd), "-" no pf there. */
function pfCell(n: ClusterNode): string {
  if (n.pf === undefined) return "?";
  if (n.pf === null) return "-";
  const bulk = n.pf.pfsyncBulkUpdateDone === false ? ", bulk update pending" : "";
  return `${n.pf.states} states${n.pf.running ? "" : " (pf DISABLED)"}${bulk}`;
}

function nodeRows(nodes: ClusterNode[]): string {
  const cell = (f: (n: ClusterNode) => string) => nodes.map((n) => (n.reachable ? f(n) : "?"));
  return table(
    ["NODE", ...nodes.map((n) => (n.self ? `${name(n)} (this node)` : name(n)))],
    [
      ["role", ...cell((n) => n.role ?? "?")],
      ["revision", ...cell(revisionCell)],
      ["carp", ...cell((n) => (n.carp ? `enabled ${yesNo(n.carp.enabled)}, preempt ${yesNo(n.carp.preempt)}` : "?"))],
      ["demotion", ...cell((n) => (n.carp ? String(n.carp.demotion) : "?"))],
      ["maintenance", ...cell((n) => (n.carp ? yesNo(n.carp.maintenance) : "?"))],
      ["pfsync", ...cell(pfsyncCell)],
      ["pf", ...cell(pfCell)],
    ],
  );
}

const key = (v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`;

/** Every vhid of either node, with its state on each ("-": not configured there, "?": not known). */
function vhidRows(nodes: ClusterNode[], splitBrain: Set<string>): string {
  const all = new Map<string, { interface: string; vhid: number }>();
  for (const n of nodes) for (const v of n.vhids ?? []) all.set(key(v), { interface: v.interface, vhid: v.vhid });
  if (all.size === 0) return "no vhids on either node";
  const rows = [...all.values()]
    .sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1))
    .map((v) => [
      v.interface,
      String(v.vhid),
      ...nodes.map((n) => (n.reachable ? (n.vhids?.find((x) => key(x) === key(v))?.state ?? "-") : "?")),
      splitBrain.has(key(v)) ? "<- MASTER ON BOTH" : "",
    ]);
  return table(["INTERFACE", "VHID", ...nodes.map(name), ""], rows);
}

export function renderCluster(c: Cluster): string {
  const nodes = c.nodes;
  const split = new Set(c.splitBrain.map(key));
  const parts: string[] = [];
  if (c.splitBrain.length) {
    const list = c.splitBrain.map((v) => `${v.interface} vhid ${v.vhid}`).join(", ");
    parts.push(`SPLIT BRAIN: ${list} ${c.splitBrain.length === 1 ? "is" : "are"} MASTER on both nodes`);
  }
  parts.push(nodeRows(nodes), vhidRows(nodes, split));
  const notes: string[] = [];
  // An older carpd sends no pfStateDifference.
  const diff = c.pfStateDifference;
  if (typeof diff === "number" && nodes.length > 1) {
    notes.push(diff === 0 ? "pf states: the same count on both nodes" : `pf states: this node has ${Math.abs(diff)} ${diff > 0 ? "more" : "fewer"} than the peer (${diff > 0 ? "+" : ""}${diff})`);
  }
  for (const n of nodes) if (!n.reachable) notes.push(`peer not reached: ${n.error ?? "no reason given"}`);
  if (nodes.length === 1) notes.push("no sync peer configured: this node only ('carpctl sync set --peer ... --fingerprint ...' pairs it)");
  if (notes.length) parts.push(notes.join("\n"));
  return parts.join("\n\n");
}

export const clusterCommands: Command[] = [
  {
    words: ["cluster"],
    synopsis: "",
    summary: "both sync nodes side by side: role, revision, demotion, pfsync, pf states and their difference, every vhid's state, split brain",
    async run(ctx, args) {
      expectArgs("cluster", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/cluster"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderCluster(data));
    },
  },
];
