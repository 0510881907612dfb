import type { components } from "../api/generated/carpd.js";
import { expectArgs } from "./args.js";
import { ok, printJson } from "./client.js";
import type { Command } from "./command.js";

type Diagnostics = components["schemas"]["Diagnostics"];
type Finding = components["schemas"]["DiagnosticFinding"];

const ORDER = ["critical", "error", "warning", "info"] as const;

function objectText(o: Finding["objects"][number]): string {
  const parts: string[] = [];
  if (o.node) parts.push(`node ${o.node}`);
  if (o.interface) parts.push(o.vhid !== undefined ? `${o.interface} vhid ${o.vhid}` : o.interface);
  if (o.listener) parts.push(`${o.listener} listener`);
  if (o.address) parts.push(o.address);
  return parts.join(" ");
}

function evidenceText(e: Finding["evidence"][number]): string {
  const values = Object.entries(e.values).map(([k, v]) => `${k}=${v === null ? "-" : String(v)}`);
  return `${e.node}: ${values.join(" ")}`;
}

/** The findings grouped by severity, worst first, then the checks that could not be made. */
export function renderDiagnostics(d: Diagnostics): string {
  const parts: string[] = [];
  for (const sev of ORDER) {
    const fs = d.findings.filter((f) => f.severity === sev);
    if (!fs.length) continue;
    const lines = [`${sev.toUpperCase()} (${fs.length})`];
    for (const f of fs) {
      lines.push(`  ${f.code}: ${f.summary}`);
      const objs = f.objects.map(objectText).filter(Boolean);
      if (objs.length) lines.push(`    concerns: ${objs.join(", ")}`);
      for (const e of f.evidence) lines.push(`    evidence: ${evidenceText(e)}`);
      lines.push(`    fix: ${f.fix}`);
    }
    parts.push(lines.join("\n"));
  }
  const passed = d.checks.filter((c) => c.status === "pass").length;
  const skipped = d.checks.filter((c) => c.status === "not-checked");
  if (!d.findings.length) parts.push(`no findings on ${d.node}`);
  const summary = [`${d.checks.length} checks: ${passed} passed, ${d.checks.length - passed - skipped.length} with findings, ${skipped.length} not checked`];
  for (const c of skipped) summary.push(`  not checked ${c.code}: ${c.reason ?? "no reason given"}`);
  parts.push(summary.join("\n"));
  return parts.join("\n\n");
}

/** 1 when any finding is at warning or above, else 0. */
export function doctorExit(d: Diagnostics): number {
  return d.findings.some((f) => f.severity !== "info") ? 1 : 0;
}

export const doctorCommands: Command[] = [
  {
    words: ["doctor"],
    synopsis: "",
    summary:
      "what is wrong with this HA pair: findings grouped by severity, each with what it concerns, the evidence from each node and the fix; checks that could not be made are listed; exits 1 when anything is at warning or above",
    async run(ctx, args) {
      expectArgs("doctor", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/cluster/diagnostics"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderDiagnostics(data));
      return doctorExit(data);
    },
  },
];
