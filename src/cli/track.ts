import type { components } from "../api/generated/carpd.js";
import { expectArgs, optInt, str, type OptionSpecs } from "./args.js";
import { ok, printJson, printResult, revisionNote, writeParams } from "./client.js";
import type { Command } from "./command.js";
import { UsageError, type Values } from "./io.js";
import { fields, table, yesNo } from "./table.js";

type Track = components["schemas"]["Track"];
type TrackReplace = components["schemas"]["TrackReplace"];
type Kind = components["schemas"]["TrackKind"];

const KINDS: readonly Kind[] = ["interface", "ping", "tcp", "http", "script"];
const WHAT = "interface IF | ping ADDRESS | tcp HOST PORT | http URL | script -- /PROGRAM [ARG...]";

/** What a track probes, in a few words. */
export function probeText(t: Pick<Track, "kind" | "interface" | "target" | "port" | "url" | "command" | "statusMin" | "statusMax">): string {
  switch (t.kind) {
    case "interface":
      return `link of ${t.interface}`;
    case "ping":
      return `ping ${t.target}`;
    case "tcp":
      return `tcp ${t.target?.includes(":") ? `[${t.target}]` : t.target}:${t.port}`;
    case "http":
      return `GET ${t.url} (${t.statusMin ?? 200}..${t.statusMax ?? 399})`;
    case "script":
      return (t.command ?? []).join(" ");
  }
}

export function renderTrack(t: Track): string {
  const s = t.status;
  return fields([
    ["name", t.name],
    ["kind", t.kind],
    ["probe", probeText(t)],
    ["interval", `${t.intervalMs} ms (timeout ${t.timeoutMs} ms)`],
    ["rise/fall", `${t.rise}/${t.fall}`],
    ["weight", String(t.weight)],
    ["nosync", yesNo(t.nosync)],
    ["state", `${s.state} since ${s.since}`],
    ["reason", s.reason],
    ["last probe", s.lastProbe ? `${s.lastProbe.ok ? "ok" : "failed"} in ${s.lastProbe.ms} ms: ${s.lastProbe.detail}` : "-"],
    ["in a row", `${s.successes} ok, ${s.failures} failed`],
    ["demotion", String(s.demotion)],
  ]);
}

const trackOptions: OptionSpecs = {
  interval: { type: "string" },
  timeout: { type: "string" },
  rise: { type: "string" },
  fall: { type: "string" },
  weight: { type: "string" },
  status: { type: "string" },
  nosync: { type: "boolean" },
};

/** The body of `track add|set`: KIND and what it probes from the words, the rest from options. */
export function trackBody(what: string, words: string[], values: Values): TrackReplace {
  const [kind, ...rest] = words;
  if (!kind) throw new UsageError(`${what} needs the kind and what it probes: ${WHAT}`);
  if (!(KINDS as readonly string[]).includes(kind)) throw new UsageError(`${what}: '${kind}' is not a kind of track (${KINDS.join(", ")})`);
  const body: TrackReplace = { kind: kind as Kind };
  const need = (n: number, usage: string) => {
    if (rest.length !== n) throw new UsageError(`${what} ${kind} takes ${usage}`);
  };
  switch (kind) {
    case "interface":
      need(1, "the interface: interface IF");
      body.interface = rest[0];
      break;
    case "ping":
      need(1, "the address to ping: ping ADDRESS");
      body.target = rest[0];
      break;
    case "tcp":
      need(2, "the host and the port: tcp HOST PORT");
      body.target = rest[0];
      if (!/^\d+$/.test(rest[1]) || Number(rest[1]) < 1 || Number(rest[1]) > 65535) throw new UsageError(`${what} tcp: port '${rest[1]}' is not 1..65535`);
      body.port = Number(rest[1]);
      break;
    case "http":
      need(1, "the URL: http URL");
      body.url = rest[0];
      break;
    case "script":
      if (rest.length === 0) throw new UsageError(`${what} script needs, after --, the program's absolute path and its arguments (no shell)`);
      body.command = rest;
      break;
  }
  const status = str(values, "status");
  if (status !== undefined) {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(status);
    if (kind !== "http" || !m) throw new UsageError("--status MIN-MAX (e.g. 200-299) is for http tracks");
    body.statusMin = Number(m[1]);
    body.statusMax = Number(m[2] ?? m[1]);
  }
  const interval = optInt(values, "interval", 100, 3_600_000);
  if (interval !== undefined) body.intervalMs = interval;
  const timeout = optInt(values, "timeout", 1, 3_599_999);
  if (timeout !== undefined) body.timeoutMs = timeout;
  const rise = optInt(values, "rise", 1, 100);
  if (rise !== undefined) body.rise = rise;
  const fall = optInt(values, "fall", 1, 100);
  if (fall !== undefined) body.fall = fall;
  const weight = optInt(values, "weight", 1, 240);
  if (weight !== undefined) body.weight = weight;
  if (values.nosync) body.nosync = true;
  return body;
}

const remove = (word: string): Command => ({
  words: ["track", word],
  synopsis: "NAME",
  summary: "remove a health track (its demotion is taken back)",
  dryRun: true,
  ifMatch: true,
  force: true,
  async run(ctx, args) {
    expectArgs(`track ${word}`, args, ["NAME"]);
    const { data, response } = await ok(ctx, ctx.api.DELETE("/v1/tracks/{name}", { params: { ...writeParams(ctx), path: { name: args[0] } } }));
    printResult(ctx, data, () => `removed track ${args[0]}${revisionNote(response)}`);
  },
});

const SYNOPSIS = `NAME (${WHAT})\n        [--interval MS] [--timeout MS] [--rise N] [--fall N] [--weight N] [--status MIN-MAX] [--nosync]`;

export const trackCommands: Command[] = [
  {
    words: ["track", "list"],
    synopsis: "",
    summary: "health tracks with their state (a track down demotes this node by its weight)",
    async run(ctx, args) {
      expectArgs("track list", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/tracks"));
      if (ctx.json) return printJson(ctx, data);
      if (!data.items.length) return ctx.out("no health tracks configured");
      ctx.out(table(["NAME", "PROBE", "STATE", "DEMOTION", "LAST PROBE", "NOSYNC"], data.items.map((t) => [t.name, probeText(t), t.status.state, String(t.status.demotion), t.status.lastProbe ? `${t.status.lastProbe.ok ? "ok" : "failed"}: ${t.status.lastProbe.detail}` : "-", yesNo(t.nosync)])));
    },
  },
  {
    words: ["track", "show"],
    synopsis: "NAME",
    summary: "one health track with its live state",
    async run(ctx, args) {
      expectArgs("track show", args, ["NAME"]);
      const { data } = await ok(ctx, ctx.api.GET("/v1/tracks/{name}", { params: { path: { name: args[0] } } }));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderTrack(data));
    },
  },
  {
    words: ["track", "add"],
    synopsis: SYNOPSIS,
    summary: "add a health track: while it is down, this node is demoted by its weight",
    options: trackOptions,
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      if (args.length < 1) throw new UsageError(`track add needs NAME and what it probes: ${WHAT}`);
      const [name, ...words] = args;
      const body: components["schemas"]["TrackCreate"] = { name, ...trackBody("track add", words, values) };
      const { data, response } = await ok(ctx, ctx.api.POST("/v1/tracks", { params: writeParams(ctx), body }));
      printResult(ctx, data, (t: Track) => `added track ${t.name}${revisionNote(response)}\n${renderTrack(t)}`);
    },
  },
  {
    words: ["track", "set"],
    synopsis: SYNOPSIS,
    summary: "replace (or create) a health track; fields not given take their defaults, and it starts again from unknown",
    options: trackOptions,
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      if (args.length < 1) throw new UsageError(`track set needs NAME and what it probes: ${WHAT}`);
      const [name, ...words] = args;
      const { data, response } = await ok(ctx, ctx.api.PUT("/v1/tracks/{name}", { params: { ...writeParams(ctx), path: { name } }, body: trackBody("track set", words, values) }));
      printResult(ctx, data, (t: Track) => `set track ${t.name}${revisionNote(response)}\n${renderTrack(t)}`);
    },
  },
  remove("remove"),
  remove("rm"),
];
