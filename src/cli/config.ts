import type { components } from "../api/generated/carpd.js";
import { expectArgs, int } from "./args.js";
import { ok, printJson, printResult, revisionNote, writeParams } from "./client.js";
import type { Command } from "./command.js";
import { table } from "./table.js";

type Config = components["schemas"]["Config"];

export const configCommands: Command[] = [
  {
    words: ["config", "show"],
    synopsis: "",
    summary: "the whole desired state as JSON (secrets redacted)",
    async run(ctx, args) {
      expectArgs("config show", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/config"));
      printJson(ctx, data);
    },
  },
  {
    words: ["config", "history"],
    synopsis: "",
    summary: "the stored revisions, newest first (* marks the current one)",
    async run(ctx, args) {
      expectArgs("config history", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/config/revisions"));
      if (ctx.json) return printJson(ctx, data);
      ctx.out(
        table(
          ["REVISION", "CREATED", "ACTOR", "SUMMARY"],
          data.items.map((r) => [
            `${r.revision}${r.revision === data.current ? " *" : ""}`,
            r.createdAt,
            r.actor,
            r.summary,
          ]),
        ),
      );
    },
  },
  {
    words: ["config", "rollback"],
    synopsis: "REV",
    summary: "make a stored revision's VIPs, CARP globals and pfsync current again (tokens stay)",
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args) {
      expectArgs("config rollback", args, ["REV"]);
      const revision = int("REV", args[0], 0, Number.MAX_SAFE_INTEGER);
      const { data, response } = await ok(
        ctx,
        ctx.api.POST("/v1/config/rollback", { params: writeParams(ctx), body: { revision } }),
      );
      printResult(
        ctx,
        data,
        (c: Config) => `rolled back to revision ${revision}${revisionNote(response) || ` (revision ${c.revision})`}`,
      );
    },
  },
];
