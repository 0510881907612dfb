import { readFileSync } from "node:fs";
import type { components } from "../api/generated/carpd.js";
import { expectArgs, list, optInt, str, type OptionSpecs } from "./args.js";
import { ok, printJson, printResult, revisionNote, writeParams } from "./client.js";
import type { Command } from "./command.js";
import { UsageError, type Values } from "./io.js";
import { fields, table, yesNo } from "./table.js";

type Hook = components["schemas"]["Hook"];
type Webhook = components["schemas"]["Webhook"];
type EventFilter = components["schemas"]["EventFilter"];

const STATES = ["INIT", "BACKUP", "MASTER"] as const;

/**
 * An event filter from `--on`: `TYPE[:KEY=VALUE,...]` with the keys interface, vhid and state,
 * e.g. `vhid.state:interface=em0,vhid=1,state=MASTER` or `splitbrain`. carpd checks the type.
 */
export function parseFilter(raw: string): EventFilter {
  const colon = raw.indexOf(":");
  const type = colon < 0 ? raw : raw.slice(0, colon);
  if (type === "") throw new UsageError(`--on '${raw}': give an event type (vhid.state, splitbrain, ...)`);
  const f: EventFilter = { type };
  if (colon < 0) return f;
  for (const part of raw.slice(colon + 1).split(",")) {
    const eq = part.indexOf("=");
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (eq < 0 || value === "") throw new UsageError(`--on '${raw}': '${part}' is not KEY=VALUE (interface, vhid or state)`);
    if (key === "interface") f.interface = value;
    else if (key === "vhid") {
      if (!/^\d+$/.test(value)) throw new UsageError(`--on '${raw}': vhid must be a number 1..255`);
      f.vhid = Number(value);
    } else if (key === "state") {
      const s = value.toUpperCase();
      if (!(STATES as readonly string[]).includes(s)) throw new UsageError(`--on '${raw}': state must be MASTER, BACKUP or INIT`);
      f.state = s as EventFilter["state"];
    } else throw new UsageError(`--on '${raw}': unknown key '${key}' (interface, vhid or state)`);
  }
  return f;
}

const filterText = (f: EventFilter) => {
  const rest = [f.interface !== undefined ? `interface=${f.interface}` : "", f.vhid !== undefined ? `vhid=${f.vhid}` : "", f.state !== undefined ? `state=${f.state}` : ""].filter(Boolean);
  return rest.length ? `${f.type}:${rest.join(",")}` : f.type;
};

function filters(values: Values, what: string): EventFilter[] {
  const on = list(values, "on");
  if (!on?.length) throw new UsageError(`${what} needs at least one --on TYPE[:interface=IF,vhid=N,state=S]`);
  return on.map(parseFilter);
}

function env(values: Values): Record<string, string> | undefined {
  const pairs = list(values, "env");
  if (!pairs) return undefined;
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new UsageError(`--env '${p}' is not NAME=VALUE`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

/** The secret from --secret-file or --secret-env; never on the command line, never in a message. */
function secret(values: Values, required: boolean, environment: Record<string, string | undefined>): string | undefined {
  const file = str(values, "secret-file");
  const name = str(values, "secret-env");
  if (file !== undefined && name !== undefined) throw new UsageError("give either --secret-file or --secret-env, not both");
  if (file !== undefined) {
    try {
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new UsageError(`cannot read --secret-file ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
    }
  }
  if (name !== undefined) {
    const v = environment[name];
    if (!v) throw new UsageError(`--secret-env ${name}: the variable is not set or empty`);
    return v;
  }
  if (required) throw new UsageError("a new webhook needs its secret: --secret-file F or --secret-env VAR");
  return undefined;
}

export function renderHook(h: Hook): string {
  return fields([
    ["name", h.name],
    ["on", h.events.map(filterText).join(" ")],
    ["command", JSON.stringify(h.command)],
    ["timeout", `${h.timeoutSec} s`],
    ["env", Object.entries(h.env).map(([k, v]) => `${k}=${v}`).join(" ") || "-"],
    ["nosync", yesNo(h.nosync)],
  ]);
}

export function renderWebhook(w: Webhook): string {
  return fields([
    ["name", w.name],
    ["url", w.url],
    ["on", w.events.map(filterText).join(" ")],
    ["secret", w.hasSecret ? "set" : "none"],
    ["timeout", `${w.timeoutSec} s`],
    ["nosync", yesNo(w.nosync)],
  ]);
}

const hookOptions: OptionSpecs = {
  on: { type: "string", multiple: true },
  timeout: { type: "string" },
  env: { type: "string", multiple: true },
  nosync: { type: "boolean" },
};

const webhookOptions: OptionSpecs = {
  on: { type: "string", multiple: true },
  timeout: { type: "string" },
  "secret-file": { type: "string" },
  "secret-env": { type: "string" },
  nosync: { type: "boolean" },
};

export const hookCommands: Command[] = [
  {
    words: ["hook", "list"],
    synopsis: "",
    summary: "programs run on events (hooks)",
    async run(ctx, args) {
      expectArgs("hook list", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/hooks"));
      if (ctx.json) return printJson(ctx, data);
      if (!data.items.length) return ctx.out("no hooks configured");
      ctx.out(table(["NAME", "ON", "COMMAND", "TIMEOUT", "NOSYNC"], data.items.map((h) => [h.name, h.events.map(filterText).join(" "), h.command.join(" "), `${h.timeoutSec} s`, yesNo(h.nosync)])));
    },
  },
  {
    words: ["hook", "show"],
    synopsis: "NAME",
    summary: "one hook",
    async run(ctx, args) {
      expectArgs("hook show", args, ["NAME"]);
      const { data } = await ok(ctx, ctx.api.GET("/v1/hooks/{name}", { params: { path: { name: args[0] } } }));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderHook(data));
    },
  },
  {
    words: ["hook", "add"],
    synopsis: "NAME --on TYPE[:interface=IF,vhid=N,state=S] [--on ...] [--timeout SEC]\n" + "        [--env NAME=VALUE...] [--nosync] -- /ABSOLUTE/PROGRAM [ARG...]",
    summary: "run a program on events (no shell: the words after -- are its argv)",
    options: hookOptions,
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      if (args.length < 2) throw new UsageError("hook add needs NAME and, after --, the program's absolute path and its arguments");
      const [name, ...command] = args;
      const body: components["schemas"]["HookCreate"] = { name, events: filters(values, "hook add"), command };
      const timeout = optInt(values, "timeout", 1, 3600);
      if (timeout !== undefined) body.timeoutSec = timeout;
      const e = env(values);
      if (e) body.env = e;
      if (values.nosync) body.nosync = true;
      const { data, response } = await ok(ctx, ctx.api.POST("/v1/hooks", { params: writeParams(ctx), body }));
      printResult(ctx, data, (h: Hook) => `added hook ${h.name}${revisionNote(response)}\n${renderHook(h)}`);
    },
  },
  {
    words: ["hook", "rm"],
    synopsis: "NAME",
    summary: "remove a hook",
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args) {
      expectArgs("hook rm", args, ["NAME"]);
      const { data, response } = await ok(ctx, ctx.api.DELETE("/v1/hooks/{name}", { params: { ...writeParams(ctx), path: { name: args[0] } } }));
      printResult(ctx, data, () => `removed hook ${args[0]}${revisionNote(response)}`);
    },
  },
  {
    words: ["hook", "test"],
    synopsis: "NAME",
    summary: "run a hook once now on a made-up event; exit 1 when it fails",
    async run(ctx, args) {
      expectArgs("hook test", args, ["NAME"]);
      const { data } = await ok(ctx, ctx.api.POST("/v1/hooks/{name}/test", { params: { path: { name: args[0] } } }));
      if (ctx.json) printJson(ctx, data);
      else {
        ctx.out(fields([
          ["hook", data.hook],
          ["result", data.ok ? `ok (exit 0, ${data.ms} ms)` : `failed: ${data.reason ?? "?"} (${data.ms} ms)`],
          ["stdout", data.stdout.trimEnd() || "-"],
          ["stderr", data.stderr.trimEnd() || "-"],
        ]));
      }
      return data.ok ? undefined : 1;
    },
  },
  {
    words: ["webhook", "list"],
    synopsis: "",
    summary: "receivers of signed JSON POSTs of events (webhooks)",
    async run(ctx, args) {
      expectArgs("webhook list", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/webhooks"));
      if (ctx.json) return printJson(ctx, data);
      if (!data.items.length) return ctx.out("no webhooks configured");
      ctx.out(table(["NAME", "URL", "ON", "TIMEOUT", "NOSYNC"], data.items.map((w) => [w.name, w.url, w.events.map(filterText).join(" "), `${w.timeoutSec} s`, yesNo(w.nosync)])));
    },
  },
  {
    words: ["webhook", "show"],
    synopsis: "NAME",
    summary: "one webhook (its secret is never shown)",
    async run(ctx, args) {
      expectArgs("webhook show", args, ["NAME"]);
      const { data } = await ok(ctx, ctx.api.GET("/v1/webhooks/{name}", { params: { path: { name: args[0] } } }));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderWebhook(data));
    },
  },
  {
    words: ["webhook", "add"],
    synopsis: "NAME URL (--secret-file F | --secret-env VAR) --on TYPE[:...] [--on ...]\n" + "        [--timeout SEC] [--nosync]",
    summary: "POST events, signed with the secret (X-Carpd-Signature), to an http(s) URL",
    options: webhookOptions,
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      expectArgs("webhook add", args, ["NAME", "URL"]);
      const body: components["schemas"]["WebhookCreate"] = { name: args[0], url: args[1], secret: secret(values, true, ctx.io.env)!, events: filters(values, "webhook add") };
      const timeout = optInt(values, "timeout", 1, 300);
      if (timeout !== undefined) body.timeoutSec = timeout;
      if (values.nosync) body.nosync = true;
      const { data, response } = await ok(ctx, ctx.api.POST("/v1/webhooks", { params: writeParams(ctx), body }));
      printResult(ctx, data, (w: Webhook) => `added webhook ${w.name}${revisionNote(response)}\n${renderWebhook(w)}`);
    },
  },
  {
    words: ["webhook", "rm"],
    synopsis: "NAME",
    summary: "remove a webhook (deliveries queued for it are dropped)",
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args) {
      expectArgs("webhook rm", args, ["NAME"]);
      const { data, response } = await ok(ctx, ctx.api.DELETE("/v1/webhooks/{name}", { params: { ...writeParams(ctx), path: { name: args[0] } } }));
      printResult(ctx, data, () => `removed webhook ${args[0]}${revisionNote(response)}`);
    },
  },
];
