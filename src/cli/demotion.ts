import { expectArgs } from "./args.js";
import { ok, printJson, printResult } from "./client.js";
import type { Command } from "./command.js";
import { UsageError } from "./io.js";

const line = (v: number) => `administrative demotion adjustment ${v > 0 ? `+${v}` : v}${v === 0 ? " (none)" : ""}`;

/** `carpctl demotion show|set N|clear`: this node's own adjustment (not synced, survives restarts). */
export const demotionCommands: Command[] = [
  {
    words: ["demotion", "show"],
    synopsis: "",
    summary: "this node's administrative demotion adjustment (the admin contributor)",
    async run(ctx, args) {
      expectArgs("demotion show", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/carp/demotion/admin"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(line(data.value));
    },
  },
  {
    words: ["demotion", "set"],
    synopsis: "N",
    summary: "set this node's demotion adjustment, -240..240 (negative: more preferred; write -- -1)",
    async run(ctx, args) {
      expectArgs("demotion set", args, ["N"]);
      if (!/^[+-]?\d+$/.test(args[0])) throw new UsageError(`demotion set: '${args[0]}' is not an integer (-240..240)`);
      const value = Number(args[0]);
      if (value < -240 || value > 240) throw new UsageError(`demotion set: ${value} is outside -240..240`);
      const { data } = await ok(ctx, ctx.api.PUT("/v1/carp/demotion/admin", { body: { value } }));
      printResult(ctx, data, (d: { value: number }) => line(d.value));
    },
  },
  {
    words: ["demotion", "clear"],
    synopsis: "",
    summary: "take this node's demotion adjustment back",
    async run(ctx, args) {
      expectArgs("demotion clear", args, []);
      const { data } = await ok(ctx, ctx.api.DELETE("/v1/carp/demotion/admin"));
      printResult(ctx, data, (d: { value: number }) => line(d.value));
    },
  },
];
