import type { components } from "../api/generated/carpd.js";
import { expectArgs, oneOf } from "./args.js";
import { ok, printJson, printResult, revisionNote, writeParams } from "./client.js";
import type { Command } from "./command.js";
import { UsageError } from "./io.js";

type Carp = components["schemas"]["Carp"];

function line(c: Carp): string {
  return `maintenance ${c.maintenance ? "on" : "off"} (global demotion ${c.demotion})`;
}

export const maintenanceCommands: Command[] = [
  {
    words: ["maintenance"],
    synopsis: "[on|off]",
    summary: "show, or switch, persistent maintenance mode (demotes this node by 240)",
    dryRun: true,
    ifMatch: true,
    async run(ctx, args) {
      expectArgs("maintenance", args, ["on|off"], 1);
      if (args.length === 0) {
        if (ctx.dryRun || ctx.ifMatch) {
          throw new UsageError("--dry-run and --if-match only apply to 'maintenance on|off'");
        }
        const { data } = await ok(ctx, ctx.api.GET("/v1/carp"));
        if (ctx.json) printJson(ctx, data);
        else ctx.out(line(data));
        return;
      }
      const enabled = oneOf("maintenance", args[0].toLowerCase(), ["on", "off"] as const) === "on";
      const { data, response } = await ok(
        ctx,
        ctx.api.PUT("/v1/carp/maintenance", { params: writeParams(ctx), body: { enabled } }),
      );
      printResult(ctx, data, (c: Carp) => `${line(c)}${revisionNote(response)}`);
    },
  },
];
