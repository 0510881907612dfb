import { readFileSync } from "node:fs";
import { parse } from "yaml";
import type { components } from "../api/generated/carpd.js";
import { expectArgs, str } from "./args.js";
import { etagRevision, ok, printJson, renderPlan, writeParams } from "./client.js";
import type { Command } from "./command.js";
import { CliError, UsageError, type Ctx, type Values } from "./io.js";

type ConfigDocument = components["schemas"]["ConfigDocument"];
type Plan = components["schemas"]["Plan"];

/** diff's exit code when applying the file would change something (terraform plan -detailed-exitcode). */
export const DIFF_CHANGES = 2;

const fileOptions = { file: { type: "string" as const, short: "f" } };

/** The document in FILE (`-`: standard input), YAML or JSON (YAML reads both). */
async function readDocument(ctx: Ctx, values: Values): Promise<{ doc: ConfigDocument; name: string }> {
  const file = str(values, "file");
  if (file === undefined) throw new UsageError("-f FILE is required (a YAML or JSON desired state; - reads standard input)");
  let text: string;
  const name = file === "-" ? "standard input" : file;
  if (file === "-") {
    if (!ctx.io.stdin) throw new UsageError("-f -: no standard input here");
    text = await ctx.io.stdin();
  } else {
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new CliError(`${name} is not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new CliError(`${name} is not a desired-state document: it needs at least 'vips:' (a list; [] for none), and may have 'carp:' and 'pfsync:' (see 'carpctl config show')`);
  }
  // carpd checks the document against its schema and rules and lists every problem.
  return { doc: doc as ConfigDocument, name };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function summary(plan: Plan): string {
  return `${plural(plan.changes.length, "change")}, ${plural(plan.steps.length, "kernel step")}`;
}

async function dryRun(ctx: Ctx, doc: ConfigDocument): Promise<Plan> {
  const p = writeParams(ctx);
  const { data } = await ok(ctx, ctx.api.PUT("/v1/config", { params: { query: { ...p.query, dryRun: true }, header: p.header }, body: doc }));
  return data as Plan;
}

const nothing = (plan: Plan) => plan.changes.length === 0 && plan.steps.length === 0;

export const applyCommands: Command[] = [
  {
    words: ["apply"],
    synopsis: "-f FILE",
    summary:
      "make the desired state the one declared in FILE (YAML or JSON, - for stdin), as one revision: shows what changes, then applies it",
    options: fileOptions,
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      expectArgs("apply", args, []);
      const { doc, name } = await readDocument(ctx, values);
      ctx.io.stderr(`reading ${name}: ${plural(Array.isArray(doc.vips) ? doc.vips.length : 0, "VIP")}\n`);
      const plan = await dryRun(ctx, doc);
      ctx.io.stderr(`planned against revision ${plan.fromRevision}: ${summary(plan)}\n`);
      if (ctx.dryRun) {
        if (ctx.json) printJson(ctx, plan);
        else ctx.out(renderPlan(plan));
        return;
      }
      if (nothing(plan)) {
        if (ctx.json) printJson(ctx, (await ok(ctx, ctx.api.GET("/v1/config"))).data);
        else ctx.out(`nothing to change: revision ${plan.fromRevision} already is what ${name} declares`);
        return;
      }
      if (!ctx.json) ctx.out(renderPlan(plan, `changes from revision ${plan.fromRevision}:`));
      // Exactly what was shown is applied: a change made meanwhile by someone else is a 412.
      const ifMatch = ctx.ifMatch ?? `"${plan.fromRevision}"`;
      ctx.io.stderr(`applying ${summary(plan)} (If-Match: ${ifMatch})\n`);
      const p = writeParams(ctx);
      const { data, response } = await ok(ctx, ctx.api.PUT("/v1/config", { params: { query: p.query, header: { "If-Match": ifMatch } }, body: doc }));
      if (ctx.json) return printJson(ctx, data);
      const revision = etagRevision(response) ?? String((data as { revision?: number }).revision);
      ctx.out(`applied: revision ${revision} (${summary(plan)})`);
    },
  },
  {
    words: ["diff"],
    synopsis: "-f FILE",
    summary:
      "what applying FILE would change, in words, applying nothing; exit 0: nothing would change, 2: something would, 1: any error (a bad command line too)",
    options: fileOptions,
    ifMatch: true,
    force: true,
    // 2 means "changes" here, as with terraform plan -detailed-exitcode; a bad command line is 1.
    usageExit: 1,
    async run(ctx, args, values) {
      expectArgs("diff", args, []);
      const { doc, name } = await readDocument(ctx, values);
      const plan = await dryRun(ctx, doc);
      if (ctx.json) printJson(ctx, plan);
      else if (nothing(plan)) ctx.out(`no changes: revision ${plan.fromRevision} already is what ${name} declares`);
      else ctx.out(renderPlan(plan, `applying ${name} to revision ${plan.fromRevision} would make ${summary(plan)}:`));
      return nothing(plan) ? 0 : DIFF_CHANGES;
    },
  },
];
