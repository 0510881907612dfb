import { readFileSync } from "node:fs";
import type { components } from "../api/generated/carpd.js";
import { expectArgs, list, oneOf, optInt, str, vhidArg, type OptionSpecs } from "./args.js";
import { ok, printJson, printResult, revisionNote, writeParams } from "./client.js";
import type { Command } from "./command.js";
import { UsageError, type Values } from "./io.js";
import { dash, fields, table, yesNo } from "./table.js";

type Vip = components["schemas"]["Vip"];
type VipCreate = components["schemas"]["VipCreate"];
type VipPatch = components["schemas"]["VipPatch"];
type VhidStatus = components["schemas"]["VhidStatus"];

const MODES = ["multicast", "unicast"] as const;

const vipOptions: OptionSpecs = {
  address: { type: "string", multiple: true },
  advbase: { type: "string" },
  advskew: { type: "string" },
  password: { type: "string" },
  "password-file": { type: "string" },
  mode: { type: "string" },
  peer: { type: "string" },
  peer6: { type: "string" },
  description: { type: "string" },
  nosync: { type: "boolean" },
  "mac-mode": { type: "string" },
};

const setOptions: OptionSpecs = {
  ...vipOptions,
  "no-password": { type: "boolean" },
  sync: { type: "boolean" },
};

/** The password from --password or --password-file; never part of any message. */
function password(values: Values): string | undefined {
  const direct = str(values, "password");
  const file = str(values, "password-file");
  if (direct !== undefined && file !== undefined) {
    throw new UsageError("give either --password or --password-file, not both");
  }
  let pw = direct;
  if (file !== undefined) {
    try {
      pw = readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new UsageError(`cannot read --password-file ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
    }
  }
  if (pw === undefined) return undefined;
  const bytes = Buffer.byteLength(pw, "utf8");
  if (bytes < 1 || bytes > 19) {
    throw new UsageError(`the CARP password must be 1 to 19 bytes long (it has ${bytes})`);
  }
  return pw;
}

type Settings = Omit<VipCreate, "interface" | "vhid" | "addresses" | "peer" | "peer6"> & { addresses?: string[] };

/** The settings shared by `vip add` and `vip set`. */
function settings(values: Values): Settings {
  const body: Settings = {};
  const addresses = list(values, "address");
  if (addresses) body.addresses = addresses;
  const advbase = optInt(values, "advbase", 1, 255);
  if (advbase !== undefined) body.advbase = advbase;
  const advskew = optInt(values, "advskew", 0, 254);
  if (advskew !== undefined) body.advskew = advskew;
  const mode = str(values, "mode");
  if (mode !== undefined) body.mode = oneOf("--mode", mode, MODES);
  const description = str(values, "description");
  if (description !== undefined) body.description = description;
  if (values.nosync) body.nosync = true;
  const macMode = str(values, "mac-mode");
  if (macMode !== undefined && macMode !== "default") body.macMode = oneOf("--mac-mode", macMode, ["virtual", "interface"] as const);
  const pw = password(values);
  if (pw !== undefined) body.password = pw;
  return body;
}

function peer(values: Values, name: "peer" | "peer6", removable: boolean): string | null | undefined {
  const v = str(values, name);
  if (v === "none") {
    if (!removable) throw new UsageError(`--${name} none only makes sense with 'vip set'`);
    return null;
  }
  return v;
}

function where(v: { interface: string; vhid: number }): string {
  return `${v.interface} vhid ${v.vhid}`;
}

export function renderVip(v: Vip): string {
  return fields([
    ["interface", v.interface],
    ["vhid", String(v.vhid)],
    ["addresses", v.addresses.join(", ")],
    ...(v.protocol === "vrrpv3"
      ? ([["protocol", "vrrpv3"], ["priority", String(v.vrrpPriority)], ["interval", `${v.vrrpInterval} cs`]] as [string, string][])
      : ([["advbase", String(v.advbase)], ["advskew", String(v.advskew)]] as [string, string][])),
    ["mode", v.mode],
    ["peer", dash(v.peer)],
    ["peer6", dash(v.peer6)],
    ["password", v.hasPassword ? "set" : "none"],
    ["nosync", yesNo(v.nosync)],
    ["mac mode", v.macMode ?? "node default"],
    ["description", dash(v.description)],
    ["state", v.live ? `${v.live.state} since ${v.live.since} (${v.live.reason})` : "-"],
  ]);
}

function renderVips(items: Vip[]): string {
  if (!items.length) return "no VIPs configured";
  return table(
    ["INTERFACE", "VHID", "STATE", "ADDRESSES", "ADVBASE", "ADVSKEW", "MODE", "PASSWORD", "DESCRIPTION"],
    items.map((v) => [
      v.interface,
      String(v.vhid),
      v.live?.state ?? "-",
      v.addresses.join(","),
      // A vrrpv3 VIP shows its interval and priority where a carp VIP shows advbase and advskew.
      v.protocol === "vrrpv3" ? `${v.vrrpInterval} cs` : String(v.advbase),
      v.protocol === "vrrpv3" ? `prio ${v.vrrpPriority}` : String(v.advskew),
      (v.protocol === "vrrpv3" ? "vrrpv3 " : "") + (v.mode === "unicast" ? `unicast ${[v.peer, v.peer6].filter(Boolean).join(",")}` : v.mode),
      v.hasPassword ? "set" : "none",
      dash(v.description),
    ]),
  );
}

function path(args: string[]) {
  return { interface: args[0], vhid: vhidArg(args[1]) };
}

export const vipCommands: Command[] = [
  {
    words: ["vip", "list"],
    synopsis: "[--interface IF]",
    summary: "the configured VIPs with their live state",
    options: { interface: { type: "string" } },
    async run(ctx, args, values) {
      expectArgs("vip list", args, []);
      const iface = str(values, "interface");
      const { data } = await ok(
        ctx,
        ctx.api.GET("/v1/vips", { params: { query: iface ? { interface: iface } : {} } }),
      );
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderVips(data.items));
    },
  },
  {
    words: ["vip", "show"],
    synopsis: "IF VHID",
    summary: "one VIP",
    async run(ctx, args) {
      expectArgs("vip show", args, ["IF", "VHID"]);
      const { data } = await ok(ctx, ctx.api.GET("/v1/vips/{interface}/{vhid}", { params: { path: path(args) } }));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderVip(data));
    },
  },
  {
    words: ["vip", "add"],
    synopsis:
      "IF [VHID] --address CIDR [--address CIDR...] [--advbase N] [--advskew N]\n" +
      "        [--password P | --password-file F] [--mode multicast|unicast] [--peer IP] [--peer6 IP]\n" +
      "        [--description TEXT] [--nosync] [--mac-mode virtual|interface]",
    summary: "add a VIP (the lowest free vhid when VHID is left out)",
    options: vipOptions,
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      expectArgs("vip add", args, ["IF", "VHID"], 1);
      if (values["mac-mode"] === "default") throw new UsageError("--mac-mode default only makes sense with 'vip set' (vip add without --mac-mode takes the node's default)");
      const { addresses, ...rest } = settings(values);
      if (!addresses) throw new UsageError("vip add needs at least one --address CIDR");
      const body: VipCreate = { interface: args[0], addresses, ...rest };
      if (args[1] !== undefined) body.vhid = vhidArg(args[1]);
      const p = peer(values, "peer", false);
      if (p) body.peer = p;
      const p6 = peer(values, "peer6", false);
      if (p6) body.peer6 = p6;
      const { data, response } = await ok(ctx, ctx.api.POST("/v1/vips", { params: writeParams(ctx), body }));
      printResult(ctx, data, (v: Vip) => `added ${where(v)}${revisionNote(response)}\n${renderVip(v)}`);
    },
  },
  {
    words: ["vip", "set"],
    synopsis:
      "IF VHID [--address CIDR...] [--advbase N] [--advskew N]\n" +
      "        [--password P | --password-file F | --no-password] [--mode multicast|unicast]\n" +
      "        [--peer IP|none] [--peer6 IP|none] [--description TEXT] [--nosync | --sync]\n" +
      "        [--mac-mode virtual|interface|default]",
    summary: "change some of a VIP's settings; the rest stay as they are",
    options: setOptions,
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args, values) {
      expectArgs("vip set", args, ["IF", "VHID"]);
      const body: VipPatch = settings(values);
      if (values["mac-mode"] === "default") body.macMode = null;
      if (values["no-password"]) {
        if (body.password !== undefined) throw new UsageError("--no-password conflicts with --password");
        body.password = null;
      }
      if (values.sync) {
        if (values.nosync) throw new UsageError("--sync conflicts with --nosync");
        body.nosync = false;
      }
      const p = peer(values, "peer", true);
      if (p !== undefined) body.peer = p;
      const p6 = peer(values, "peer6", true);
      if (p6 !== undefined) body.peer6 = p6;
      if (Object.keys(body).length === 0) throw new UsageError("vip set: nothing to change (see carpctl vip --help)");
      const { data, response } = await ok(
        ctx,
        ctx.api.PATCH("/v1/vips/{interface}/{vhid}", {
          params: { ...writeParams(ctx), path: path(args) },
          body,
        }),
      );
      printResult(ctx, data, (v: Vip) => `changed ${where(v)}${revisionNote(response)}\n${renderVip(v)}`);
    },
  },
  {
    words: ["vip", "rm"],
    synopsis: "IF VHID",
    summary: "remove a VIP (its addresses, then its vhid)",
    dryRun: true,
    ifMatch: true,
    force: true,
    async run(ctx, args) {
      expectArgs("vip rm", args, ["IF", "VHID"]);
      const target = path(args);
      const { data, response } = await ok(
        ctx,
        ctx.api.DELETE("/v1/vips/{interface}/{vhid}", { params: { ...writeParams(ctx), path: target } }),
      );
      printResult(ctx, data, () => `removed ${where(target)}${revisionNote(response)}`);
    },
  },
  {
    words: ["vip", "state"],
    synopsis: "IF VHID backup|master",
    summary: "force a vhid to BACKUP or MASTER (the election goes on afterwards)",
    dryRun: true,
    ifMatch: true,
    async run(ctx, args) {
      expectArgs("vip state", args, ["IF", "VHID", "backup|master"]);
      const target = path(args);
      const state = oneOf("the state", args[2].toLowerCase(), ["backup", "master"] as const);
      const { data } = await ok(
        ctx,
        ctx.api.PUT("/v1/vips/{interface}/{vhid}/state", {
          params: { ...writeParams(ctx), path: target },
          body: { state },
        }),
      );
      printResult(ctx, data, (v: VhidStatus) => `${where(v)} is now ${v.state} (since ${v.since}, ${v.reason})`);
    },
  },
  {
    words: ["vhid", "free"],
    synopsis: "IF",
    summary: "the lowest vhid not yet used on an interface",
    async run(ctx, args) {
      expectArgs("vhid free", args, ["IF"]);
      const { data } = await ok(ctx, ctx.api.GET("/v1/vhids/free", { params: { query: { interface: args[0] } } }));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(String(data.vhid));
    },
  },
];
