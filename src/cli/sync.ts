import type { components } from "../api/generated/carpd.js";
import { expectArgs, int, list, oneOf, optInt, str } from "./args.js";
import { ok, printJson, printResult, renderPlan, revisionNote } from "./client.js";
import type { Command } from "./command.js";
import { CliError, UsageError, type Values } from "./io.js";
import { fields } from "./table.js";

type SyncStatus = components["schemas"]["SyncStatus"];
type SyncPatch = components["schemas"]["SyncPatch"];

const ROLES = ["standalone", "primary", "secondary"] as const;
const SPLIT_BRAIN_POLICIES = ["alert", "demote"] as const;

/** "host:port" or "[v6]:port" as GET /v1/sync reports the listener. */
function splitListen(listen: string): { host: string; port: string } {
  const m = /^\[(.*)\]:(\d+)$/.exec(listen) ?? /^(.*):(\d+)$/.exec(listen);
  return m ? { host: m[1], port: m[2] } : { host: listen, port: "" };
}

/** The --peer a node's peer should be given to reach this node's listener. */
function peerAddressOf(listen: string | null): string {
  if (listen === null) return "ADDR[:PORT]";
  const { host, port } = splitListen(listen);
  // A wildcard listener has no one address: the peer needs this node's address on the sync interface.
  if (host === "0.0.0.0" || host === "::" || host === "") return `ADDR:${port}`;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export function renderIdentity(s: SyncStatus): string {
  const head = fields([
    ["node", s.node],
    ["fingerprint", s.identity.fingerprint],
    [
      "listen",
      s.listen ?? "none (carpd runs without --sync-listen: this node can push but takes no pushes)",
    ],
  ]);
  return (
    `${head}\n` +
    `pin this node on its peer with:\n` +
    `  carpctl sync set --peer ${peerAddressOf(s.listen)} --fingerprint ${s.identity.fingerprint}`
  );
}

function peerLine(s: SyncStatus): string {
  if (!s.peer) return "none";
  const { address, port, fingerprint } = s.peer;
  return `${address.includes(":") ? `[${address}]` : address}:${port}, fingerprint ${fingerprint}`;
}

function revisionsLine(s: SyncStatus): string {
  const local = `local ${s.localRevision}`;
  if (s.role === "primary") {
    return s.peerRevision === null
      ? `${local}, peer unknown (not heard from since carpd started)`
      : `${local}, peer ${s.peerRevision} (applied on the secondary, as last heard)`;
  }
  if (s.role === "secondary") {
    return s.peerRevision === 0 || s.peerRevision === null
      ? `${local}, peer none (nothing applied from the primary yet)`
      : `${local}, peer ${s.peerRevision} (the primary's revision applied here)`;
  }
  return local;
}

function lagLine(s: SyncStatus): string {
  if (s.role !== "primary") return "-";
  const { revisions, seconds } = s.lag;
  if (revisions === null) return "unknown (the secondary's revision is not known yet)";
  if (revisions === 0) return "none";
  const age = seconds === null ? "" : `, the oldest unapplied is ${seconds.toFixed(1)} s old`;
  return `${revisions} revision${revisions === 1 ? "" : "s"}${age}`;
}

function ruleLine(s: SyncStatus): string {
  const { add, cap } = s.advskewRule;
  const rule = `add ${add}, cap ${cap}: advskew = min(primary's + ${add}, ${cap}), vrrpPriority = max(primary's - ${add}, 1)`;
  return s.role === "secondary" ? rule : `${rule} (used when this node is a secondary)`;
}

function overridesLine(s: SyncStatus): string {
  if (!s.overrides.length) return "none";
  return s.overrides
    .map((o) => {
      const parts: string[] = [];
      if (o.advskew !== undefined) parts.push(`advskew ${o.advskew}`);
      if (o.vrrpPriority !== undefined) parts.push(`vrrpPriority ${o.vrrpPriority}`);
      return `${o.interface}/${o.vhid} ${parts.join(" ")}`;
    })
    .join(", ");
}

function detachedLine(s: SyncStatus): string {
  const keys = [...s.detached.vips, ...(s.detached.carp ? ["carp"] : [])];
  if (!keys.length) return "none";
  return `${keys.join(", ")} (changed here with --force; 'carpctl sync set --reattach KEY' gives them back)`;
}

/** Only the reasons that were counted; --json has every counter. */
function rejectedLine(s: SyncStatus): string {
  if (s.rejected === null) return "- (no sync listener)";
  const moved = Object.entries(s.rejected).filter(([, n]) => n !== 0);
  return moved.length ? moved.map(([reason, n]) => `${reason} ${n}`).join(", ") : "none";
}

/** The vhids MASTER on both nodes now, with the policy. */
function splitBrainLine(s: SyncStatus): string {
  const list = s.splitBrain.map((v) => `${v.interface} vhid ${v.vhid} since ${v.since}`).join(", ");
  return `${list || "none"} (policy ${s.splitBrainPolicy})`;
}

const primaryOnly = (s: SyncStatus, v: string | null): string => (s.role !== "primary" ? "-" : (v ?? "never"));

export function renderSyncStatus(s: SyncStatus): string {
  return fields([
    ["node", s.node],
    ["role", s.role],
    ["peer", peerLine(s)],
    ["revisions", revisionsLine(s)],
    ["lag", lagLine(s)],
    ["pending", s.role === "primary" ? (s.pending ? "yes" : "no") : "-"],
    ["last attempt", primaryOnly(s, s.lastAttempt)],
    ["last success", primaryOnly(s, s.lastSuccess)],
    ["last error", s.lastError ?? "none"],
    ["advskew rule", ruleLine(s)],
    ["overrides", overridesLine(s)],
    ["local addresses", s.localAddresses.length ? s.localAddresses.join(", ") : "none"],
    ["detached", detachedLine(s)],
    ["rejected", rejectedLine(s)],
    ["split brain", splitBrainLine(s)],
  ]);
}

/** ADDR, ADDR:PORT or [IPv6]:PORT; the port defaults to the API's (8443) when left out. */
export function peerArg(raw: string): { address: string; port?: number } {
  const v = raw.trim();
  const withPort = (address: string, port: string | undefined) =>
    port === undefined ? { address } : { address, port: int("the --peer port", port, 1, 65535) };
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(v);
  if (v6) return withPort(v6[1], v6[2]);
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d+))?$/.exec(v);
  if (v4) return withPort(v4[1], v4[2]);
  if (/^[0-9A-Fa-f:.]+$/.test(v) && v.includes(":")) return { address: v };
  throw new UsageError(
    `--peer must be the peer's sync address, ADDR or ADDR:PORT ([ADDR]:PORT for IPv6), got '${raw}'`,
  );
}

/** Object keys to give back to sync: IF/VHID or carp. */
function reattachArg(raw: string): string {
  if (raw === "carp") return raw;
  const m = /^([^/\s]+)\/(\d+)$/.exec(raw);
  if (!m) throw new UsageError(`--reattach takes a VIP key IF/VHID (em0/1) or carp, got '${raw}'`);
  return `${m[1]}/${int("the --reattach VHID", m[2], 1, 255)}`;
}

/** Validates every flag before anything is sent; `peer` is completed from the current one when only half is given. */
function syncPatch(values: Values): { body: SyncPatch; peer?: { address?: string; port?: number; fingerprint?: string } } {
  const body: SyncPatch = {};
  const role = str(values, "role");
  if (role !== undefined) body.role = oneOf("--role", role, ROLES);
  const peerRaw = str(values, "peer");
  const fingerprint = str(values, "fingerprint");
  let peer: { address?: string; port?: number; fingerprint?: string } | undefined;
  if (values["no-peer"]) {
    if (peerRaw !== undefined || fingerprint !== undefined) {
      throw new UsageError("--no-peer conflicts with --peer and --fingerprint");
    }
    body.peer = null;
  } else if (peerRaw !== undefined || fingerprint !== undefined) {
    peer = { ...(peerRaw !== undefined ? peerArg(peerRaw) : {}), ...(fingerprint !== undefined ? { fingerprint } : {}) };
  }
  const add = optInt(values, "add", 0, 254);
  const cap = optInt(values, "cap", 0, 254);
  if (add !== undefined || cap !== undefined) {
    body.advskewRule = { ...(add !== undefined ? { add } : {}), ...(cap !== undefined ? { cap } : {}) };
  }
  const local = list(values, "local-address");
  if (local) {
    if (local.includes("none") && local.length > 1) throw new UsageError("--local-address none cannot be combined with addresses");
    body.localAddresses = local[0] === "none" ? [] : local;
  }
  const reattach = list(values, "reattach");
  if (reattach) body.reattach = reattach.map(reattachArg);
  const policy = str(values, "split-brain-policy");
  if (policy !== undefined) body.splitBrainPolicy = oneOf("--split-brain-policy", policy, SPLIT_BRAIN_POLICIES);
  if (Object.keys(body).length === 0 && !peer) {
    throw new UsageError("sync set: nothing to change (see carpctl sync --help)");
  }
  return { body, peer };
}

export const syncCommands: Command[] = [
  {
    words: ["sync", "identity"],
    synopsis: "",
    summary: "this node's certificate fingerprint (give it to the peer) and its sync listener",
    async run(ctx, args) {
      expectArgs("sync identity", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/sync"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderIdentity(data));
    },
  },
  {
    words: ["sync", "status"],
    synopsis: "",
    summary: "role, peer, revisions here and there, lag, last push and its error, detached objects",
    async run(ctx, args) {
      expectArgs("sync status", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/sync"));
      if (ctx.json) printJson(ctx, data);
      else ctx.out(renderSyncStatus(data));
    },
  },
  {
    words: ["sync", "plan"],
    synopsis: "",
    summary: "on the primary: the changes and steps a push would make on the secondary (nothing is applied)",
    async run(ctx, args) {
      expectArgs("sync plan", args, []);
      const { data } = await ok(ctx, ctx.api.GET("/v1/sync/plan"));
      if (ctx.json) return printJson(ctx, data);
      ctx.out(
        renderPlan(
          data.plan,
          `a push of revision ${data.revision}, planned on the secondary at its revision ` +
            `${data.plan.fromRevision}: nothing was applied or stored`,
        ),
      );
    },
  },
  {
    words: ["sync", "run"],
    synopsis: "",
    summary: "on the primary: push the newest revision to the secondary now (exit 1 when not reached or refused)",
    async run(ctx, args) {
      expectArgs("sync run", args, []);
      const { data } = await ok(ctx, ctx.api.POST("/v1/sync/run"));
      if (ctx.json) printJson(ctx, data);
      if (!data.ok) {
        throw new CliError(`${data.detail}\nhint: 'carpctl sync status' here and there; the primary retries by itself`);
      }
      if (!ctx.json) ctx.out(`pushed revision ${data.revision} to the secondary: ${data.detail}`);
    },
  },
  {
    words: ["sync", "set"],
    synopsis:
      "[--role standalone|primary|secondary] [--peer ADDR[:PORT]] [--fingerprint FP]\n" +
      "        [--no-peer] [--add N] [--cap N] [--local-address CIDR...|none] [--reattach IF/VHID|carp...]\n" +
      "        [--split-brain-policy alert|demote]",
    summary: "change this node's sync role, peer, per-node rules and split-brain policy; the rest stay as they are",
    options: {
      role: { type: "string" },
      peer: { type: "string" },
      fingerprint: { type: "string" },
      "no-peer": { type: "boolean" },
      add: { type: "string" },
      cap: { type: "string" },
      "local-address": { type: "string", multiple: true },
      reattach: { type: "string", multiple: true },
      "split-brain-policy": { type: "string" },
    },
    dryRun: true,
    ifMatch: true,
    async run(ctx, args, values) {
      expectArgs("sync set", args, []);
      const { body, peer } = syncPatch(values);
      let ifMatch = ctx.ifMatch;
      if (peer) {
        if (peer.address !== undefined && peer.fingerprint !== undefined) {
          body.peer = { address: peer.address, fingerprint: peer.fingerprint, ...(peer.port ? { port: peer.port } : {}) };
        } else {
          // Half a peer: the other half is the current one, written back guarded by the revision read.
          const current = await ok(ctx, ctx.api.GET("/v1/sync"));
          const now = current.data.peer;
          if (!now) {
            throw new UsageError(
              peer.fingerprint === undefined
                ? "--peer needs --fingerprint: this node has no peer yet (the fingerprint is what 'carpctl sync identity' prints on the peer)"
                : "--fingerprint needs --peer ADDR[:PORT]: this node has no peer yet",
            );
          }
          body.peer = {
            address: peer.address ?? now.address,
            port: peer.address !== undefined ? peer.port : now.port,
            fingerprint: peer.fingerprint ?? now.fingerprint,
          };
          if (body.peer.port === undefined) delete body.peer.port;
          ifMatch ??= current.response.headers.get("ETag") ?? undefined;
        }
      }
      const { data, response } = await ok(
        ctx,
        ctx.api.PATCH("/v1/sync", {
          params: { query: ctx.dryRun ? { dryRun: true } : {}, header: ifMatch ? { "If-Match": ifMatch } : {} },
          body,
        }),
      );
      printResult(ctx, data, (s: SyncStatus) => `sync settings changed${revisionNote(response)}\n${renderSyncStatus(s)}`);
    },
  },
];
