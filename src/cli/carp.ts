import type { components } from "../api/generated/carpd.js";
import { expectArgs, oneOf, optBool } from "./args.js";
import { ok, printJson, printResult, revisionNote, writeParams } from "./client.js";
import type { Command } from "./command.js";
import { UsageError } from "./io.js";
import { fields, yesNo } from "./table.js";

type Carp = components["schemas"]["Carp"];
type CarpPatch = components["schemas"]["CarpPatch"];

export function renderCarp(c: Carp): string {
  return fields([
    ["enabled", yesNo(c.enabled)],
    ["preempt", yesNo(c.preempt)],
    ["maintenance", yesNo(c.maintenance)],
    ["demotion", String(c.demotion) + (c.contributors?.length ? ` (${c.contributors.map((x) => `${x.name} ${x.value}`).join(", ")})` : "")],
    ["temporarily disabled", c.temporarilyDisabled ? "yes (until re-enabled or restarted; not stored)" : "no"],
  ]);
}

export const carpCommands: Command[] = [
  {
    words: ["carp", "show"],
    synopsis: "",
    summary: "CARP globals (net.inet.carp.allow, preempt) and the live demotion",
    async run(ctx, args) {
      expectArgs("carp show", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/carp"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderCarp(data));
    },
  },
  {
    words: ["carp", "set"],
    synopsis: "[--enabled true|false] [--preempt true|false]",
    summary: "change the CARP globals",
    options: { enabled: { type: "string" }, preempt: { type: "string" } },
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      expectArgs("carp set", args, []);
      const body: CarpPatch = {};
      const enabled = optBool(values, "enabled");
      if (enabled !== undefined) body.enabled = enabled;
      const preempt = optBool(values, "preempt");
      if (preempt !== undefined) body.preempt = preempt;
      if (Object.keys(body).length === 0) throw new UsageError("carp set: give --enabled and/or --preempt");
      const { data, response } = await ok(ctx, ctx.api.PATCH("/v1/carp", { params: writeParams(ctx), body }));
      printResult(ctx, data, (c: Carp) => `carp globals changed${revisionNote(response)}\n${renderCarp(c)}`);
    },
  },
  {
    words: ["carp", "temporary-disable"],
    synopsis: "on|off",
    summary: "disable CARP on this node until 'off' or a restart of carpd (not stored)",
    dryRun: true,
    ifMatch: true,
    async run(ctx, args) {
      expectArgs("carp temporary-disable", args, ["on|off"]);
      const disabled = oneOf("carp temporary-disable", args[0].toLowerCase(), ["on", "off"] as const) === "on";
      const { data } = await ok(ctx, ctx.api.PUT("/v1/carp/temporary-disable", { params: writeParams(ctx), body: { disabled } }));
      printResult(ctx, data, (c: Carp) => `${c.temporarilyDisabled ? "CARP temporarily disabled on this node (until 'carp temporary-disable off' or a restart)" : "CARP no longer temporarily disabled"}\n${renderCarp(c)}`);
    },
  },
];
