import type { components } from "../api/generated/carpd.js";
import { expectArgs, optBool, optInt, str } from "./args.js";
import { ok, printJson, printResult, revisionNote } from "./client.js";
import type { Command } from "./command.js";
import { UsageError, type Values } from "./io.js";
import { dash, fields, yesNo } from "./table.js";
import { pfsyncLine } from "./status.js";

type PfsyncView = components["schemas"]["PfsyncView"];
type PfsyncConfig = components["schemas"]["PfsyncConfig"];
type PfsyncVersion = components["schemas"]["PfsyncVersion"];

const VERSIONS: PfsyncVersion[] = [1301, 1400, 1500];

export function renderPfsync(p: PfsyncView): string {
  return fields([
    ["enabled", yesNo(p.enabled)],
    ["syncdev", dash(p.syncdev)],
    ["syncpeer", dash(p.syncpeer)],
    ["maxupd", String(p.maxupd)],
    ["defer", yesNo(p.defer)],
    ["version", String(p.version)],
    ["live", pfsyncLine(p.status)],
  ]);
}

/** The stored settings of a view, without the live status. */
function configOf(v: PfsyncView): PfsyncConfig {
  const c: PfsyncConfig = { enabled: v.enabled, maxupd: v.maxupd, defer: v.defer, version: v.version };
  if (v.syncdev !== undefined) c.syncdev = v.syncdev;
  if (v.syncpeer !== undefined) c.syncpeer = v.syncpeer;
  return c;
}

/** Validates every flag before anything is sent. */
function changes(values: Values): (c: PfsyncConfig) => void {
  const enabled = optBool(values, "enabled");
  const syncdev = str(values, "syncdev");
  const syncpeer = str(values, "syncpeer");
  const maxupd = optInt(values, "maxupd", 0, 255);
  const defer = optBool(values, "defer");
  const rawVersion = optInt(values, "version", 0, 9999);
  if (rawVersion !== undefined && !VERSIONS.includes(rawVersion as PfsyncVersion)) {
    throw new UsageError(`--version must be one of ${VERSIONS.join(", ")}, got ${rawVersion}`);
  }
  const given = [enabled, syncdev, syncpeer, maxupd, defer, rawVersion].some((v) => v !== undefined);
  if (!given) throw new UsageError("pfsync set: nothing to change (see carpctl pfsync --help)");
  return (c) => {
    if (enabled !== undefined) c.enabled = enabled;
    if (syncdev === "none") delete c.syncdev;
    else if (syncdev !== undefined) c.syncdev = syncdev;
    if (syncpeer !== undefined) c.syncpeer = syncpeer === "none" ? null : syncpeer;
    if (maxupd !== undefined) c.maxupd = maxupd;
    if (defer !== undefined) c.defer = defer;
    if (rawVersion !== undefined) c.version = rawVersion as PfsyncVersion;
  };
}

export const pfsyncCommands: Command[] = [
  {
    words: ["pfsync", "show"],
    synopsis: "",
    summary: "pfsync settings with the live status",
    async run(ctx, args) {
      expectArgs("pfsync show", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/pfsync"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderPfsync(data));
    },
  },
  {
    words: ["pfsync", "set"],
    synopsis:
      "[--enabled true|false] [--syncdev IF|none] [--syncpeer IP|none] [--maxupd N]\n" +
      "        [--defer true|false] [--version 1301|1400|1500]",
    summary: "change some pfsync settings; the rest stay as they are",
    options: {
      enabled: { type: "string" },
      syncdev: { type: "string" },
      syncpeer: { type: "string" },
      maxupd: { type: "string" },
      defer: { type: "string" },
      version: { type: "string" },
    },
    dryRun: true,
    ifMatch: true,
    async run(ctx, args, values) {
      expectArgs("pfsync set", args, []);
      const apply = changes(values);
      // The API replaces the whole object: read it, merge, and write it back
      // guarded by the revision read so a concurrent change is not overwritten.
      const current = await ok(ctx, ctx.api.GET("/v1/pfsync"));
      const body = configOf(current.data);
      apply(body);
      const ifMatch = ctx.ifMatch ?? current.response.headers.get("ETag") ?? undefined;
      const { data, response } = await ok(
        ctx,
        ctx.api.PUT("/v1/pfsync", {
          params: {
            query: ctx.dryRun ? { dryRun: true } : {},
            header: ifMatch ? { "If-Match": ifMatch } : {},
          },
          body,
        }),
      );
      printResult(ctx, data, (p: PfsyncView) => `pfsync changed${revisionNote(response)}\n${renderPfsync(p)}`);
    },
  },
];
