import { expectArgs, oneOf } from "./args.js";
import { ok, printJson, revisionNote } from "./client.js";
import type { Command } from "./command.js";
import type { Ctx } from "./io.js";
import { table } from "./table.js";

/** Token requests take If-Match but have no dry run. */
function ifMatchOnly(ctx: Ctx) {
  return { header: ctx.ifMatch ? { "If-Match": ctx.ifMatch } : {} };
}

export const tokenCommands: Command[] = [
  {
    words: ["token", "list"],
    synopsis: "",
    summary: "API tokens (names and roles; secrets are never shown)",
    async run(ctx, args) {
      expectArgs("token list", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/tokens"));
      if (ctx.json) return printJson(ctx, data);
      ctx.out(table(["NAME", "ROLE", "CREATED"], data.items.map((t) => [t.name, t.role, t.createdAt])));
    },
  },
  {
    words: ["token", "add"],
    synopsis: "NAME read|admin",
    summary: "create a token and print its secret (shown this once only)",
    ifMatch: true,
    async run(ctx, args) {
      expectArgs("token add", args, ["NAME", "read|admin"]);
      const role = oneOf("the role", args[1], ["read", "admin"] as const);
      const { data, response } = await ok(
        ctx,
        ctx.api.POST("/v1/tokens", { params: ifMatchOnly(ctx), body: { name: args[0], role } }),
      );
      if (ctx.json) return printJson(ctx, data);
      ctx.io.stderr(`created ${data.role} token ${data.name}${revisionNote(response)}; its secret is shown only now:\n`);
      ctx.out(data.token);
    },
  },
  {
    words: ["token", "rm"],
    synopsis: "NAME",
    summary: "revoke a token",
    ifMatch: true,
    async run(ctx, args) {
      expectArgs("token rm", args, ["NAME"]);
      const { response } = await ok(
        ctx,
        ctx.api.DELETE("/v1/tokens/{name}", { params: { ...ifMatchOnly(ctx), path: { name: args[0] } } }),
      );
      if (!ctx.json) ctx.out(`revoked token ${args[0]}${revisionNote(response)}`);
    },
  },
];
