import type { components } from "../api/generated/carpd.js";
import { expectArgs, optInt, str } from "./args.js";
import { ok, printJson } from "./client.js";
import type { Command } from "./command.js";
import type { Ctx } from "./io.js";

type Job = components["schemas"]["Job"];

const POLL_MS = 200;
const MARK = { pass: "ok  ", fail: "FAIL", skipped: "skip" } as const;

/** Prints what of a job has not been printed yet: checks, steps as they end, vhids as they move. */
class Progress {
  private checks = 0;
  private readonly steps = new Map<string, string>();
  private readonly vhids = new Set<string>();
  private planned = false;
  constructor(private readonly ctx: Ctx) {}

  show(job: Job): void {
    for (const c of job.checks.slice(this.checks)) this.ctx.out(`check ${MARK[c.status]} ${c.name}: ${c.evidence}`);
    this.checks = job.checks.length;
    if (!this.planned && job.plan.length > 0 && (job.dryRun || job.checks.every((c) => c.status !== "fail"))) {
      this.planned = true;
      this.ctx.out(job.dryRun ? "plan:" : "then:");
      for (const p of job.plan) this.ctx.out(`  - ${p}`);
    }
    for (const s of job.steps) {
      if (s.name === "checks" || s.status === "pending") continue;
      if (this.steps.get(s.name) === s.status) continue;
      this.steps.set(s.name, s.status);
      this.ctx.out(`${s.name} ${s.status}${s.detail ? `: ${s.detail}` : ""}`);
    }
    for (const v of job.vhids) {
      const key = `${v.interface}/${v.vhid}`;
      if (v.status === "waiting" || this.vhids.has(key)) continue;
      this.vhids.add(key);
      this.ctx.out(v.status === "moved" ? `  ${v.interface} vhid ${v.vhid} moved in ${v.handoverMs} ms` : `  ${v.interface} vhid ${v.vhid} NOT moved: ${v.detail}`);
    }
  }
}

function outcome(ctx: Ctx, job: Job): number {
  if (ctx.json) printJson(ctx, job);
  const ok = job.state === "succeeded";
  if (!ctx.json) ctx.out(`${job.dryRun ? "dry run" : `switchover ${job.id}`}: ${job.dryRun ? (ok ? "every check passed" : "a check failed") : job.state}${job.result ? ` — ${job.result.reason}` : ""}`);
  return ok ? 0 : 1;
}

export const switchoverCommands: Command[] = [
  {
    words: ["switchover"],
    synopsis: "[--dry-run] [--back] [--to NODE] [--margin MS]",
    summary:
      "hand every vhid this node is MASTER of to the sync peer without losing a packet, after checking the peer is ready (--back: take them back here); shows each check and step, exits 1 unless it succeeded",
    options: { to: { type: "string" }, back: { type: "boolean" }, margin: { type: "string" } },
    dryRun: true,
    async run(ctx, args, values) {
      expectArgs("switchover", args, []);
      const to = str(values, "to");
      const marginMs = optInt(values, "margin", 0, 60000);
      const body = { ...(to !== undefined ? { to } : {}), ...(values.back === true ? { back: true } : {}), ...(ctx.dryRun ? { dryRun: true } : {}), ...(marginMs !== undefined ? { marginMs } : {}) };
      const { data } = await ok(ctx, ctx.api.POST("/v1/cluster/switchover", { body }));
      let job = data as Job;
      const progress = new Progress(ctx);
      if (!ctx.json) progress.show(job);
      while (job.state === "running") {
        await new Promise((r) => setTimeout(r, POLL_MS));
        job = (await ok(ctx, ctx.api.GET("/v1/jobs/{id}", { params: { path: { id: job.id } } }))).data;
        if (!ctx.json) progress.show(job);
      }
      return outcome(ctx, job);
    },
  },
  {
    words: ["job", "show"],
    synopsis: "ID",
    summary: "show a job (a switchover): its state, checks, steps, each vhid's handover time and the result",
    async run(ctx, args) {
      expectArgs("job show", args, ["ID"], 1);
      const { data } = await ok(ctx, ctx.api.GET("/v1/jobs/{id}", { params: { path: { id: args[0] } } }));
      if (ctx.json) {
        printJson(ctx, data);
        return data.state === "succeeded" || data.state === "running" ? 0 : 1;
      }
      ctx.out(`job ${data.id} (${data.kind}${data.back ? ", back" : ""}) ${data.state}; from ${data.from} to ${data.to ?? "-"}; started ${data.createdAt}${data.finishedAt ? `, ended ${data.finishedAt}` : ""}`);
      new Progress(ctx).show(data);
      if (data.result) ctx.out(`result: ${data.result.reason}`);
      return data.state === "succeeded" || data.state === "running" ? 0 : 1;
    },
  },
  {
    words: ["job", "list"],
    synopsis: "",
    summary: "list the jobs kept since carpd started, newest first",
    async run(ctx, args) {
      expectArgs("job list", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/jobs"));
      if (ctx.json) return printJson(ctx, data);
      if (data.jobs.length === 0) return ctx.out("no jobs");
      for (const j of data.jobs) ctx.out(`${j.id}  ${j.state.padEnd(11)}  ${j.back ? "back" : `to ${j.to ?? "-"}`}  ${j.createdAt}  ${j.result?.reason ?? ""}`);
    },
  },
];
