import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type CliIO } from "../src/cli/run.js";
import type { components } from "../src/api/generated/carpd.js";

type S = components["schemas"];

interface Canned {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** A stand-in for carpd: answers "METHOD /path" from `routes` and records every request. */
async function fakeCarpd(t: TestContext, routes: Record<string, Canned>) {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      const raw = Buffer.concat(chunks).toString("utf8");
      requests.push({
        method: req.method ?? "",
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: raw ? JSON.parse(raw) : undefined,
      });
      const canned = routes[`${req.method} ${url.pathname}`] ?? {
        status: 404,
        body: problem(404, "CARPD_ERR_ROUTE_NOT_FOUND", `no canned answer for ${req.method} ${url.pathname}`),
      };
      const isProblem = canned.status >= 400;
      const headers: Record<string, string> = { ...(canned.headers ?? {}) };
      if (canned.body !== undefined) {
        headers["Content-Type"] = isProblem ? "application/problem+json" : "application/json";
      }
      res.writeHead(canned.status, headers);
      res.end(canned.body === undefined ? undefined : JSON.stringify(canned.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests };
}

function problem(status: number, code: S["ErrorCode"], detail: string, extra: Partial<S["Problem"]> = {}): S["Problem"] {
  return { type: `urn:carpd:error:${code}`, title: code, status, code, detail, ...extra };
}

interface Captured {
  io: CliIO;
  out: () => string;
  err: () => string;
}

function capture(env: Record<string, string | undefined>): Captured {
  let out = "";
  let err = "";
  return {
    io: { stdout: (s) => (out += s), stderr: (s) => (err += s), env },
    out: () => out,
    err: () => err,
  };
}

async function carpctl(argv: string[], env: Record<string, string | undefined>) {
  const c = capture(env);
  const code = await run(argv, c.io);
  return { code, out: c.out(), err: c.err() };
}

const vip: S["Vip"] = {
  interface: "em0",
  vhid: 1,
  addresses: ["192.0.2.10/24"],
  protocol: "carp",
  advbase: 1,
  advskew: 0,
  mode: "multicast",
  description: "uplink",
  nosync: false,
  hasPassword: true,
  live: { state: "MASTER", since: "2025-01-01T00:00:00Z", reason: "preempt" },
};

const status: S["Status"] = {
  node: "fw1",
  version: "0.1.0",
  revision: 42,
  startedAt: "2025-01-01T00:00:00Z",
  reconcile: { ok: true, at: "2025-01-01T00:00:00Z" },
  backend: {
    name: "memory",
    description: "in-memory test backend",
    capabilities: { unicast: true, ipv6: true, pfsync: true, pfsyncVersions: [1400], forceState: true, vrrpv3: false },
  },
  carp: { enabled: true, preempt: false, maintenance: true, demotion: 240, temporarilyDisabled: false },
  store: { writable: true, lastError: null },
  pf: { running: true, states: 1234, srcNodes: 0, stateSearches: 99000, stateInserts: 5000, stateRemovals: 3766, via: "nvlist", pfsyncBulkUpdateDone: false },
  vhids: [
    {
      interface: "em0",
      vhid: 1,
      state: "MASTER",
      since: "2025-01-01T00:00:00Z",
      reason: "preempt",
      protocol: "carp",
      advbase: 1,
      advskew: 0,
      effectiveSkew: 0,
    },
    {
      interface: "vlan100",
      vhid: 200,
      state: "BACKUP",
      since: "2025-01-02T00:00:00Z",
      reason: "master seen",
      protocol: "carp",
      advbase: 3,
      advskew: 100,
      effectiveSkew: 100,
    },
  ],
  pfsync: { running: true, syncdev: "em2", syncpeer: "10.0.0.2", bulkUpdateDone: true },
};

const pfsyncView: S["PfsyncView"] = {
  enabled: true,
  syncdev: "em2",
  syncpeer: "10.0.0.2",
  maxupd: 128,
  defer: false,
  version: 1400,
  status: { running: true, bulkUpdateDone: true },
};

const plan: S["Plan"] = {
  dryRun: true,
  fromRevision: 42,
  changes: ["vips[em0/1].advskew: 0 -> 50"],
  steps: [{ op: "vhid.set", target: "em0 vhid 1", detail: "advskew 50" }],
};

test("status renders the globals, an aligned vhid table and the pfsync line", async (t) => {
  const srv = await fakeCarpd(t, { "GET /v1/status": { status: 200, body: status } });
  const r = await carpctl(["status"], { CARPD_URL: srv.url, CARPD_TOKEN: "tok-env" });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /node:\s+fw1/);
  assert.match(r.out, /revision:\s+42/);
  assert.match(r.out, /enabled yes, preempt no, maintenance yes, demotion 240/);
  assert.match(r.out, /pfsync: running, syncdev em2, syncpeer 10\.0\.0\.2, bulk update done/);
  assert.match(r.out, /^pf: enabled, 1234 states \(inserts 5000, removals 3766, searches 99000\), pfsync bulk update PENDING$/m);
  const lines = r.out.split("\n");
  const header = lines.find((l) => l.startsWith("INTERFACE"));
  const row = lines.find((l) => l.startsWith("vlan100"));
  assert.ok(header && row, r.out);
  assert.match(header, /^INTERFACE\s+VHID\s+STATE\s+SINCE\s+REASON\s+ADVBASE\s+ADVSKEW$/);
  assert.equal(row.indexOf("BACKUP"), header.indexOf("STATE"));
  assert.equal(row.indexOf("master seen"), header.indexOf("REASON"));
  assert.equal(srv.requests[0].headers.authorization, "Bearer tok-env");
});

test("--json prints the raw answer", async (t) => {
  const srv = await fakeCarpd(t, { "GET /v1/status": { status: 200, body: status } });
  const r = await carpctl(["--json", "status"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), status);
});

test("vip add posts the addresses and settings and never prints the password", async (t) => {
  const srv = await fakeCarpd(t, {
    "POST /v1/vips": { status: 201, body: { ...vip, vhid: 3 }, headers: { ETag: '"43"' } },
  });
  const r = await carpctl(
    ["vip", "add", "em0", "3", "--address", "192.0.2.10/24", "--address", "2001:db8::10/64",
      "--advskew", "100", "--password", "s3cretpw", "--description", "uplink"],
    { CARPD_URL: srv.url, CARPD_TOKEN: "x" },
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(srv.requests.length, 1);
  assert.equal(srv.requests[0].method, "POST");
  assert.deepEqual(srv.requests[0].body, {
    interface: "em0",
    vhid: 3,
    addresses: ["192.0.2.10/24", "2001:db8::10/64"],
    advskew: 100,
    password: "s3cretpw",
    description: "uplink",
  });
  assert.match(r.out, /added em0 vhid 3 \(revision 43\)/);
  assert.doesNotMatch(r.out + r.err, /s3cretpw/);
});

test("vip add reads --password-file and leaves vhid out when not given", async (t) => {
  const srv = await fakeCarpd(t, { "POST /v1/vips": { status: 201, body: vip } });
  const dir = mkdtempSync(join(tmpdir(), "carpctl-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "pw"), "fromfile\n");
  const r = await carpctl(["vip", "add", "em0", "--address", "192.0.2.10/24", "--password-file", join(dir, "pw")], {
    CARPD_URL: srv.url,
    CARPD_TOKEN: "x",
  });
  assert.equal(r.code, 0, r.err);
  const body = srv.requests[0].body as S["VipCreate"];
  assert.equal(body.password, "fromfile");
  assert.equal("vhid" in body, false);
  assert.doesNotMatch(r.out + r.err, /fromfile/);
});

test("vip add without --address is a usage error and sends nothing", async (t) => {
  const srv = await fakeCarpd(t, {});
  const r = await carpctl(["vip", "add", "em0"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 2);
  assert.match(r.err, /--address/);
  assert.equal(srv.requests.length, 0);
});

test("vip set sends a PATCH with only the given fields, nulls for removals", async (t) => {
  const srv = await fakeCarpd(t, {
    "PATCH /v1/vips/em0/1": { status: 200, body: { ...vip, advskew: 50, hasPassword: false }, headers: { ETag: '"44"' } },
  });
  const r = await carpctl(["vip", "set", "em0", "1", "--advskew", "50", "--no-password", "--peer", "none"], {
    CARPD_URL: srv.url,
    CARPD_TOKEN: "x",
  });
  assert.equal(r.code, 0, r.err);
  assert.equal(srv.requests[0].method, "PATCH");
  assert.equal(srv.requests[0].path, "/v1/vips/em0/1");
  assert.deepEqual(srv.requests[0].body, { advskew: 50, password: null, peer: null });
  assert.match(r.out, /changed em0 vhid 1 \(revision 44\)/);
  assert.match(r.out, /password:\s+none/);
});

test("vip set with nothing to change is a usage error", async (t) => {
  const srv = await fakeCarpd(t, {});
  const r = await carpctl(["vip", "set", "em0", "1"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 2);
  assert.equal(srv.requests.length, 0);
});

test("vip rm sends a DELETE and reports the new revision", async (t) => {
  const srv = await fakeCarpd(t, { "DELETE /v1/vips/em0/1": { status: 204, headers: { ETag: '"45"' } } });
  const r = await carpctl(["vip", "rm", "em0", "1"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.equal(srv.requests[0].method, "DELETE");
  assert.equal(srv.requests[0].path, "/v1/vips/em0/1");
  assert.equal(srv.requests[0].headers["if-match"], undefined);
  assert.equal(r.out, "removed em0 vhid 1 (revision 45)\n");
});

test("--if-match is sent quoted, wherever it appears", async (t) => {
  const srv = await fakeCarpd(t, { "DELETE /v1/vips/em0/1": { status: 204 } });
  const r = await carpctl(["--if-match", "7", "vip", "rm", "em0", "1"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.equal(srv.requests[0].headers["if-match"], '"7"');
  const bad = await carpctl(["vip", "rm", "em0", "1", "--if-match", "latest"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--if-match/);
  assert.equal(srv.requests.length, 1);
});

test("--dry-run adds dryRun=true and prints the plan", async (t) => {
  const srv = await fakeCarpd(t, { "PATCH /v1/vips/em0/1": { status: 200, body: plan } });
  const r = await carpctl(["vip", "set", "em0", "1", "--advskew", "50", "--dry-run"], {
    CARPD_URL: srv.url,
    CARPD_TOKEN: "x",
  });
  assert.equal(r.code, 0, r.err);
  assert.equal(srv.requests[0].query.get("dryRun"), "true");
  assert.match(r.out, /dry run from revision 42: nothing was applied/);
  assert.match(r.out, /vips\[em0\/1\]\.advskew: 0 -> 50/);
  assert.match(r.out, /^vhid\.set\s+em0 vhid 1\s+advskew 50$/m);
});

test("--dry-run on a read-only command is a usage error", async (t) => {
  const srv = await fakeCarpd(t, {});
  const r = await carpctl(["status", "--dry-run"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 2);
  assert.equal(srv.requests.length, 0);
});

test("pfsync set reads, merges and writes back guarded by the ETag read", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/pfsync": { status: 200, body: pfsyncView, headers: { ETag: '"42"' } },
    "PUT /v1/pfsync": { status: 200, body: { ...pfsyncView, maxupd: 64, defer: true }, headers: { ETag: '"43"' } },
  });
  const r = await carpctl(["pfsync", "set", "--maxupd", "64", "--defer", "true"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(
    srv.requests.map((q) => q.method),
    ["GET", "PUT"],
  );
  const put = srv.requests[1];
  assert.equal(put.headers["if-match"], '"42"');
  assert.deepEqual(put.body, {
    enabled: true,
    syncdev: "em2",
    syncpeer: "10.0.0.2",
    maxupd: 64,
    defer: true,
    version: 1400,
  });
  assert.match(r.out, /pfsync changed \(revision 43\)/);
});

test("pfsync set: --if-match wins over the ETag, none removes the peer", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/pfsync": { status: 200, body: pfsyncView, headers: { ETag: '"42"' } },
    "PUT /v1/pfsync": { status: 200, body: pfsyncView },
  });
  const r = await carpctl(["pfsync", "set", "--syncpeer", "none", "--if-match", "40"], {
    CARPD_URL: srv.url,
    CARPD_TOKEN: "x",
  });
  assert.equal(r.code, 0, r.err);
  assert.equal(srv.requests[1].headers["if-match"], '"40"');
  assert.equal((srv.requests[1].body as S["PfsyncConfig"]).syncpeer, null);
});

test("pfsync set rejects a bad --version before sending anything", async (t) => {
  const srv = await fakeCarpd(t, {});
  const r = await carpctl(["pfsync", "set", "--version", "1200"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 2);
  assert.match(r.err, /--version must be one of 1301, 1400, 1500/);
  assert.equal(srv.requests.length, 0);
});

test("usage errors exit 2: unknown command, unknown flag, bad integers", async (t) => {
  const srv = await fakeCarpd(t, {});
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const unknown = await carpctl(["frobnicate"], env);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown command 'frobnicate'/);
  assert.match(unknown.err, /carpctl --help/);

  const flag = await carpctl(["vip", "list", "--colour"], env);
  assert.equal(flag.code, 2);
  assert.match(flag.err, /--colour/);

  const skew = await carpctl(["vip", "add", "em0", "--address", "192.0.2.1/24", "--advskew", "lots"], env);
  assert.equal(skew.code, 2);
  assert.match(skew.err, /--advskew must be an integer/);

  const range = await carpctl(["vip", "set", "em0", "1", "--advbase", "0"], env);
  assert.equal(range.code, 2);
  assert.match(range.err, /--advbase must be an integer from 1 to 255/);

  const vhid = await carpctl(["vip", "rm", "em0", "x1"], env);
  assert.equal(vhid.code, 2);
  assert.match(vhid.err, /VHID must be an integer/);

  assert.equal(srv.requests.length, 0);
});

test("a usage error never echoes the password", async () => {
  const r = await carpctl(["vip", "add", "em0", "--address", "192.0.2.1/24", "--password", "-dashpw", "--bogus"], {});
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.out + r.err, /dashpw/);
});

test("401 exits 1 with the problem and a hint on where the token comes from", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/status": { status: 401, body: problem(401, "CARPD_ERR_UNAUTHORIZED", "Missing or unknown bearer token.") },
  });
  const r = await carpctl(["status"], { CARPD_URL: srv.url, CARPD_TOKEN: "wrong", CARPD_STATE_DIR: "/srv/carpd" });
  assert.equal(r.code, 1);
  assert.match(r.err, /CARPD_ERR_UNAUTHORIZED/);
  assert.match(r.err, /Missing or unknown bearer token/);
  assert.match(
    r.err,
    /the token was refused: pass --token, set CARPD_TOKEN, or check \/srv\/carpd\/admin\.token/,
  );
  assert.equal(r.out, "");
});

test("a validation problem lists every field error", async (t) => {
  const srv = await fakeCarpd(t, {
    "POST /v1/vips": {
      status: 400,
      body: problem(400, "CARPD_ERR_VALIDATION", "The request is invalid.", {
        errors: [
          { path: "/addresses/0", message: "not an address" },
          { path: "/peer", message: "required in unicast mode" },
        ],
      }),
    },
  });
  const r = await carpctl(["vip", "add", "em0", "--address", "nonsense"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 1);
  assert.match(r.err, /CARPD_ERR_VALIDATION: The request is invalid\./);
  assert.match(r.err, /\/addresses\/0: not an address/);
  assert.match(r.err, /\/peer: required in unicast mode/);
});

test("412 suggests re-reading the revision", async (t) => {
  const srv = await fakeCarpd(t, {
    "PUT /v1/carp/maintenance": {
      status: 412,
      body: problem(412, "CARPD_ERR_PRECONDITION_FAILED", "Revision 7 is not current.", { currentRevision: 9 }),
    },
  });
  const r = await carpctl(["maintenance", "on", "--if-match", "7"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 1);
  assert.deepEqual(srv.requests[0].body, { enabled: true });
  assert.match(r.err, /now revision 9/);
});

test("connection refused exits 1 and says how to point at carpd", async (t) => {
  const srv = await fakeCarpd(t, {});
  // Reserve a port, then free it, so nothing listens there.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const r = await carpctl(["status", "--url", `http://127.0.0.1:${port}`], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 1);
  assert.match(r.err, /ECONNREFUSED/);
  assert.match(r.err, new RegExp(`is carpd running\\? it listens on http://127\\.0\\.0\\.1:${port} \\(--url / CARPD_URL\\)`));
  assert.equal(srv.requests.length, 0, "--url must win over CARPD_URL");
});

test("the token comes from --token, else CARPD_TOKEN, else <state-dir>/admin.token", async (t) => {
  const srv = await fakeCarpd(t, { "GET /v1/carp": { status: 200, body: status.carp } });
  const dir = mkdtempSync(join(tmpdir(), "carpctl-state-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "admin.token"), "from-file\n");

  await carpctl(["carp", "show"], { CARPD_URL: srv.url, CARPD_STATE_DIR: dir });
  await carpctl(["carp", "show", "--state-dir", dir], { CARPD_URL: srv.url });
  await carpctl(["carp", "show"], { CARPD_URL: srv.url, CARPD_STATE_DIR: dir, CARPD_TOKEN: "from-env" });
  await carpctl(["carp", "show", "--token", "from-flag"], { CARPD_URL: srv.url, CARPD_STATE_DIR: dir, CARPD_TOKEN: "from-env" });
  assert.deepEqual(
    srv.requests.map((q) => q.headers.authorization),
    ["Bearer from-file", "Bearer from-file", "Bearer from-env", "Bearer from-flag"],
  );
});

test("without any token nothing is sent and the 401 hint names the missing file", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/carp": { status: 401, body: problem(401, "CARPD_ERR_UNAUTHORIZED", "A bearer token is required.") },
  });
  const dir = mkdtempSync(join(tmpdir(), "carpctl-empty-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await carpctl(["carp", "show"], { CARPD_URL: srv.url, CARPD_STATE_DIR: dir });
  assert.equal(r.code, 1);
  assert.equal(srv.requests[0].headers.authorization, undefined);
  assert.match(r.err, /admin\.token not readable/);
});

test("carp set patches only the given globals; booleans are validated", async (t) => {
  const srv = await fakeCarpd(t, { "PATCH /v1/carp": { status: 200, body: { ...status.carp, preempt: true } } });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(["carp", "set", "--preempt", "true"], env);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(srv.requests[0].body, { preempt: true });
  const bad = await carpctl(["carp", "set", "--enabled", "maybe"], env);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--enabled must be true or false/);
  assert.equal(srv.requests.length, 1);
});

test("vip state forces the state; vhid free asks with the interface", async (t) => {
  const srv = await fakeCarpd(t, {
    "PUT /v1/vips/em0/1/state": { status: 200, body: { ...status.vhids[0], state: "BACKUP", reason: "forced" } },
    "GET /v1/vhids/free": { status: 200, body: { interface: "em0", vhid: 2 } },
  });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(["vip", "state", "em0", "1", "backup"], env);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(srv.requests[0].body, { state: "backup" });
  assert.match(r.out, /em0 vhid 1 is now BACKUP/);
  const free = await carpctl(["vhid", "free", "em0"], env);
  assert.equal(free.code, 0, free.err);
  assert.equal(srv.requests[1].query.get("interface"), "em0");
  assert.equal(free.out, "2\n");
  const bad = await carpctl(["vip", "state", "em0", "1", "primary"], env);
  assert.equal(bad.code, 2);
});

test("config history marks the current revision; rollback posts the revision", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/config/revisions": {
      status: 200,
      body: {
        current: 5,
        items: [
          { revision: 5, createdAt: "2025-01-05T00:00:00Z", actor: "token:ops", summary: "vip em0/1 changed" },
          { revision: 4, createdAt: "2025-01-04T00:00:00Z", actor: "bootstrap", summary: "initial" },
        ],
      },
    },
    "POST /v1/config/rollback": { status: 200, body: plan },
  });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const h = await carpctl(["config", "history"], env);
  assert.equal(h.code, 0, h.err);
  assert.match(h.out, /^REVISION\s+CREATED\s+ACTOR\s+SUMMARY$/m);
  assert.match(h.out, /^5 \*\s+2025-01-05T00:00:00Z\s+token:ops\s+vip em0\/1 changed$/m);
  assert.match(h.out, /^4\s+2025/m);
  const rb = await carpctl(["config", "rollback", "4", "--dry-run"], env);
  assert.equal(rb.code, 0, rb.err);
  assert.deepEqual(srv.requests[1].body, { revision: 4 });
  assert.equal(srv.requests[1].query.get("dryRun"), "true");
  const bad = await carpctl(["config", "rollback", "four"], env);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /REV must be an integer/);
});

test("token add prints the secret alone on stdout; token rm deletes by name", async (t) => {
  const srv = await fakeCarpd(t, {
    "POST /v1/tokens": {
      status: 201,
      body: { name: "ci", role: "read", createdAt: "2025-01-01T00:00:00Z", token: "carpd_secret123" },
    },
    "DELETE /v1/tokens/ci": { status: 204 },
  });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const add = await carpctl(["token", "add", "ci", "read"], env);
  assert.equal(add.code, 0, add.err);
  assert.deepEqual(srv.requests[0].body, { name: "ci", role: "read" });
  assert.equal(add.out, "carpd_secret123\n");
  assert.match(add.err, /shown only now/);
  const rm = await carpctl(["token", "rm", "ci"], env);
  assert.equal(rm.code, 0, rm.err);
  assert.equal(srv.requests[1].method, "DELETE");
  assert.equal(srv.requests[1].path, "/v1/tokens/ci");
  const role = await carpctl(["token", "add", "ci", "root"], env);
  assert.equal(role.code, 2);
  const dry = await carpctl(["token", "rm", "ci", "--dry-run"], env);
  assert.equal(dry.code, 2);
  assert.equal(srv.requests.length, 2);
});

test("--help prints usage and exits 0 without contacting carpd", async () => {
  const r = await carpctl(["vip", "--help"], {});
  assert.equal(r.code, 0);
  assert.match(r.out, /carpctl vip add IF \[VHID\] --address CIDR/);
  assert.doesNotMatch(r.out, /carpctl token add/);
  const none = await carpctl([], {});
  assert.equal(none.code, 2);
});

const FP = "D9:81:E0:E3:98:E5:F3:E5:FB:DC:8E:59:6A:8E:81:0B:17:53:16:3B:F8:7E:6D:6C:F1:CD:15:72:B5:FC:EC:65";
const FP_PEER = "50:A9:3D:87:B0:AA:28:A8:60:E6:1A:2C:4D:11:B3:43:C7:EC:4E:CA:9A:06:E0:FE:64:D4:9E:D9:E0:53:26:20";

const syncPrimary: S["SyncStatus"] = {
  node: "fw1",
  role: "primary",
  identity: { fingerprint: FP },
  listen: "198.51.100.1:8443",
  peer: { address: "198.51.100.2", port: 8443, fingerprint: FP_PEER },
  localRevision: 42,
  peerRevision: 40,
  lag: { revisions: 2, seconds: 12.34 },
  pending: true,
  lastAttempt: "2025-01-05T00:00:10Z",
  lastSuccess: "2025-01-05T00:00:00Z",
  lastError: "the sync peer 198.51.100.2:8443 is unreachable: connection refused: nothing listens there (ECONNREFUSED)",
  advskewRule: { add: 100, cap: 254 },
  overrides: [],
  localAddresses: ["192.0.2.10/24"],
  detached: { vips: [], carp: false },
  rejected: { "no-client-cert": 0, "unknown-peer": 3, stale: 1, replay: 0 },
  splitBrainPolicy: "alert",
  splitBrain: [],
};

const syncSecondary: S["SyncStatus"] = {
  ...syncPrimary,
  node: "fw2",
  role: "secondary",
  splitBrainPolicy: "demote",
  splitBrain: [{ interface: "em0", vhid: 1, since: "2025-01-05T00:00:03Z" }],
  identity: { fingerprint: FP_PEER },
  listen: "198.51.100.2:8443",
  peer: { address: "198.51.100.1", port: 8443, fingerprint: FP },
  localRevision: 17,
  peerRevision: 42,
  lag: { revisions: null, seconds: null },
  pending: false,
  lastAttempt: null,
  lastSuccess: null,
  lastError: null,
  advskewRule: { add: 50, cap: 200 },
  overrides: [{ interface: "em0", vhid: 3, advskew: 42 }],
  localAddresses: ["192.0.2.11/24"],
  detached: { vips: ["em0/1"], carp: true },
  rejected: { "no-client-cert": 0, "unknown-peer": 0 },
};

test("sync identity prints the fingerprint, the listener and the line to run on the peer", async (t) => {
  const srv = await fakeCarpd(t, { "GET /v1/sync": { status: 200, body: syncPrimary } });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(["sync", "identity"], env);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^fingerprint: ${FP}$`, "m"));
  assert.match(r.out, /^listen:\s+198\.51\.100\.1:8443$/m);
  assert.match(r.out, new RegExp(`^  carpctl sync set --peer 198\\.51\\.100\\.1:8443 --fingerprint ${FP}$`, "m"));
  const json = await carpctl(["sync", "identity", "--json"], env);
  assert.equal(JSON.parse(json.out).identity.fingerprint, FP);
});

test("sync identity without --sync-listen, or on a wildcard or IPv6 listener, says what the peer needs", async (t) => {
  const srv = await fakeCarpd(t, { "GET /v1/sync": { status: 200, body: { ...syncPrimary, listen: null } } });
  const r = await carpctl(["sync", "identity"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^listen:\s+none \(carpd runs without --sync-listen/m);
  assert.match(r.out, /carpctl sync set --peer ADDR\[:PORT\] --fingerprint/);
  for (const [listen, peer] of [["0.0.0.0:8443", "ADDR:8443"], ["[2001:db8::1]:9443", "[2001:db8::1]:9443"]]) {
    const s = await fakeCarpd(t, { "GET /v1/sync": { status: 200, body: { ...syncPrimary, listen } } });
    const w = await carpctl(["sync", "identity"], { CARPD_URL: s.url, CARPD_TOKEN: "x" });
    assert.ok(w.out.includes(`carpctl sync set --peer ${peer} --fingerprint`), w.out);
  }
});

test("sync status on a primary: revisions on both sides, lag, last error in words, refused messages", async (t) => {
  const srv = await fakeCarpd(t, { "GET /v1/sync": { status: 200, body: syncPrimary } });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(["sync", "status"], env);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^role:\s+primary$/m);
  assert.match(r.out, new RegExp(`^peer:\\s+198\\.51\\.100\\.2:8443, fingerprint ${FP_PEER}$`, "m"));
  assert.match(r.out, /^revisions:\s+local 42, peer 40 \(applied on the secondary, as last heard\)$/m);
  assert.match(r.out, /^lag:\s+2 revisions, the oldest unapplied is 12\.3 s old$/m);
  assert.match(r.out, /^pending:\s+yes$/m);
  assert.match(r.out, /^last attempt:\s+2025-01-05T00:00:10Z$/m);
  assert.match(r.out, /^last success:\s+2025-01-05T00:00:00Z$/m);
  assert.match(r.out, /^last error:\s+the sync peer 198\.51\.100\.2:8443 is unreachable: connection refused/m);
  assert.match(r.out, /^detached:\s+none$/m);
  assert.match(r.out, /^rejected:\s+unknown-peer 3, stale 1$/m);
  assert.match(r.out, /^split brain:\s+none \(policy alert\)$/m);
  const json = await carpctl(["--json", "sync", "status"], env);
  assert.deepEqual(JSON.parse(json.out), syncPrimary);
});

test("sync status on a secondary: the primary's revision applied, rule, overrides, detached objects", async (t) => {
  const srv = await fakeCarpd(t, { "GET /v1/sync": { status: 200, body: syncSecondary } });
  const r = await carpctl(["sync", "status"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^revisions:\s+local 17, peer 42 \(the primary's revision applied here\)$/m);
  assert.match(r.out, /^lag:\s+-$/m);
  assert.match(r.out, /^last attempt:\s+-$/m);
  assert.match(r.out, /^last error:\s+none$/m);
  assert.match(r.out, /^advskew rule:\s+add 50, cap 200: advskew = min\(primary's \+ 50, 200\), vrrpPriority = max\(primary's - 50, 1\)$/m);
  assert.match(r.out, /^overrides:\s+em0\/3 advskew 42$/m);
  assert.match(r.out, /^local addresses: 192\.0\.2\.11\/24$/m);
  assert.match(r.out, /^detached:\s+em0\/1, carp \(changed here with --force; 'carpctl sync set --reattach KEY'/m);
  assert.match(r.out, /^rejected:\s+none$/m);
  assert.match(r.out, /^split brain:\s+em0 vhid 1 since 2025-01-05T00:00:03Z \(policy demote\)$/m);
});

test("sync plan prints the secondary's changes and steps for the primary's revision", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/sync/plan": { status: 200, body: { revision: 42, plan: { ...plan, fromRevision: 17 } } },
  });
  const r = await carpctl(["sync", "plan"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^a push of revision 42, planned on the secondary at its revision 17: nothing was applied or stored$/m);
  assert.match(r.out, /^  vips\[em0\/1\]\.advskew: 0 -> 50$/m);
  assert.match(r.out, /^vhid\.set\s+em0 vhid 1\s+advskew 50$/m);
});

test("sync plan on a secondary exits 1 with the problem's code and detail", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/sync/plan": {
      status: 409,
      body: problem(409, "CARPD_ERR_SYNC_ROLE", "this node is secondary: the plan is computed for the primary's push; ask the primary"),
    },
  });
  const r = await carpctl(["sync", "plan"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 1);
  assert.match(r.err, /^carpctl: error 409 CARPD_ERR_SYNC_ROLE: this node is secondary: .*ask the primary$/m);
  assert.equal(r.out, "");
});

test("sync run: pushed exits 0; refused by the secondary exits 1 with its reason; not reached exits 1 with a hint", async (t) => {
  const pushed = await fakeCarpd(t, {
    "POST /v1/sync/run": {
      status: 200,
      body: { ok: true, reached: true, revision: 42, detail: "applied as revision 18", sync: syncPrimary },
    },
  });
  const r = await carpctl(["sync", "run"], { CARPD_URL: pushed.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "pushed revision 42 to the secondary: applied as revision 18\n");
  assert.equal(pushed.requests[0].method, "POST");

  const refusedDetail = "the secondary refused revision 42: revision 42 is older than revision 50 already applied here";
  const refused = await fakeCarpd(t, {
    "POST /v1/sync/run": { status: 200, body: { ok: false, reached: true, revision: 42, detail: refusedDetail, sync: syncPrimary } },
  });
  const no = await carpctl(["sync", "run"], { CARPD_URL: refused.url, CARPD_TOKEN: "x" });
  assert.equal(no.code, 1);
  assert.equal(no.out, "");
  assert.ok(no.err.startsWith(`carpctl: ${refusedDetail}\n`), no.err);
  const noJson = await carpctl(["sync", "run", "--json"], { CARPD_URL: refused.url, CARPD_TOKEN: "x" });
  assert.equal(noJson.code, 1);
  assert.equal(JSON.parse(noJson.out).ok, false);

  const unreachable = await fakeCarpd(t, {
    "POST /v1/sync/run": {
      status: 502,
      body: problem(502, "CARPD_ERR_SYNC_PEER_UNREACHABLE", "the sync peer 198.51.100.2:8443 did not answer within 5000 ms"),
    },
  });
  const down = await carpctl(["sync", "run"], { CARPD_URL: unreachable.url, CARPD_TOKEN: "x" });
  assert.equal(down.code, 1);
  assert.match(down.err, /error 502 CARPD_ERR_SYNC_PEER_UNREACHABLE: the sync peer 198\.51\.100\.2:8443 did not answer/);
  assert.match(down.err, /^hint: check the peer's --sync-listen address/m);
});

test("sync set patches only what is given: role, peer with port, rule, local addresses, reattach", async (t) => {
  const srv = await fakeCarpd(t, {
    "PATCH /v1/sync": { status: 200, body: syncSecondary, headers: { ETag: '"18"' } },
  });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(
    ["sync", "set", "--role", "secondary", "--peer", "198.51.100.1:9443", "--fingerprint", FP, "--add", "50", "--cap", "200",
      "--local-address", "192.0.2.11/24", "--local-address", "2001:db8::11/64", "--reattach", "em0/1", "--reattach", "carp"],
    env,
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(srv.requests.length, 1);
  assert.equal(srv.requests[0].method, "PATCH");
  assert.deepEqual(srv.requests[0].body, {
    role: "secondary",
    peer: { address: "198.51.100.1", port: 9443, fingerprint: FP },
    advskewRule: { add: 50, cap: 200 },
    localAddresses: ["192.0.2.11/24", "2001:db8::11/64"],
    reattach: ["em0/1", "carp"],
  });
  assert.match(r.out, /^sync settings changed \(revision 18\)$/m);
  assert.match(r.out, /^role:\s+secondary$/m);

  // No port: the API's default; IPv6 in brackets; --no-peer and --local-address none empty them.
  await carpctl(["sync", "set", "--peer", "198.51.100.1", "--fingerprint", FP], env);
  assert.deepEqual(srv.requests[1].body, { peer: { address: "198.51.100.1", fingerprint: FP } });
  await carpctl(["sync", "set", "--peer", "[2001:db8::1]:8443", "--fingerprint", FP], env);
  assert.deepEqual(srv.requests[2].body, { peer: { address: "2001:db8::1", port: 8443, fingerprint: FP } });
  await carpctl(["sync", "set", "--role", "standalone", "--no-peer", "--local-address", "none"], env);
  assert.deepEqual(srv.requests[3].body, { role: "standalone", peer: null, localAddresses: [] });
  const policy = await carpctl(["sync", "set", "--split-brain-policy", "demote"], env);
  assert.equal(policy.code, 0, policy.err);
  assert.deepEqual(srv.requests[4].body, { splitBrainPolicy: "demote" });
});

test("sync set with half a peer completes it from the current one, guarded by the revision read", async (t) => {
  const srv = await fakeCarpd(t, {
    "GET /v1/sync": { status: 200, body: syncPrimary, headers: { ETag: '"42"' } },
    "PATCH /v1/sync": { status: 200, body: syncPrimary, headers: { ETag: '"43"' } },
  });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(["sync", "set", "--fingerprint", FP], env);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(srv.requests.map((q) => q.method), ["GET", "PATCH"]);
  assert.equal(srv.requests[1].headers["if-match"], '"42"');
  assert.deepEqual(srv.requests[1].body, { peer: { address: "198.51.100.2", port: 8443, fingerprint: FP } });
  await carpctl(["sync", "set", "--peer", "198.51.100.9", "--if-match", "40"], env);
  assert.equal(srv.requests[3].headers["if-match"], '"40"');
  assert.deepEqual(srv.requests[3].body, { peer: { address: "198.51.100.9", fingerprint: FP_PEER } });

  const alone = await fakeCarpd(t, { "GET /v1/sync": { status: 200, body: { ...syncPrimary, role: "standalone", peer: null } } });
  const half = await carpctl(["sync", "set", "--peer", "198.51.100.9"], { CARPD_URL: alone.url, CARPD_TOKEN: "x" });
  assert.equal(half.code, 2);
  assert.match(half.err, /--peer needs --fingerprint: this node has no peer yet/);
  assert.deepEqual(alone.requests.map((q) => q.method), ["GET"]);
});

test("sync set: --dry-run prints the plan; bad flags are usage errors and send nothing", async (t) => {
  const srv = await fakeCarpd(t, { "PATCH /v1/sync": { status: 200, body: plan } });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const dry = await carpctl(["sync", "set", "--add", "50", "--dry-run"], env);
  assert.equal(dry.code, 0, dry.err);
  assert.equal(srv.requests[0].query.get("dryRun"), "true");
  assert.match(dry.out, /dry run from revision 42: nothing was applied/);
  const cases: [string[], RegExp][] = [
    [["sync", "set"], /sync set: nothing to change/],
    [["sync", "set", "--role", "master"], /--role must be one of standalone, primary, secondary, got 'master'/],
    [["sync", "set", "--split-brain-policy", "panic"], /--split-brain-policy must be one of alert, demote, got 'panic'/],
    [["sync", "set", "--no-peer", "--fingerprint", FP], /--no-peer conflicts with --peer and --fingerprint/],
    [["sync", "set", "--peer", "fw2.example:8443", "--fingerprint", FP], /--peer must be the peer's sync address/],
    [["sync", "set", "--peer", "198.51.100.1:70000", "--fingerprint", FP], /the --peer port must be an integer from 1 to 65535/],
    [["sync", "set", "--cap", "255"], /--cap must be an integer from 0 to 254, got 255/],
    [["sync", "set", "--reattach", "em0"], /--reattach takes a VIP key IF\/VHID \(em0\/1\) or carp, got 'em0'/],
    [["sync", "set", "--add", "1", "--force"], /--force does not apply to 'sync set'/],
    [["sync", "status", "--dry-run"], /--dry-run does not apply to 'sync status'/],
    [["sync", "push"], /unknown command 'sync push'; 'sync' takes one of: identity, status, plan, run, set/],
  ];
  for (const [argv, message] of cases) {
    const r = await carpctl(argv, env);
    assert.equal(r.code, 2, argv.join(" "));
    assert.match(r.err, message);
    assert.match(r.err, /run 'carpctl sync --help' for usage/);
  }
  assert.equal(srv.requests.length, 1);
});

const clusterNode = (over: Partial<S["ClusterNode"]>): S["ClusterNode"] => ({
  self: true,
  reachable: true,
  error: null,
  node: "fw1",
  role: "primary",
  revision: 42,
  appliedRevision: 0,
  carp: { enabled: true, preempt: true, maintenance: false, demotion: 0 },
  pfsync: { enabled: true, running: true, syncdev: "em2", syncpeer: "10.0.0.2", bulkUpdateDone: true },
  vhids: [
    { interface: "em0", vhid: 1, state: "MASTER", since: "2025-01-01T00:00:00Z", reason: "preempt" },
    { interface: "em0", vhid: 2, state: "MASTER", since: "2025-01-01T00:00:00Z", reason: "preempt" },
    { interface: "em1", vhid: 7, state: "MASTER", since: "2025-01-01T00:00:00Z", reason: "preempt" },
  ],
  ...over,
});

test("cluster shows both nodes side by side, every vhid on each, and a loud SPLIT BRAIN line", async (t) => {
  const cluster: S["Cluster"] = {
    nodes: [
      clusterNode({ pf: { running: true, states: 1200, srcNodes: 0, stateSearches: 9, stateInserts: 8, stateRemovals: 7, via: "nvlist", pfsyncBulkUpdateDone: true } }),
      clusterNode({
        self: false,
        node: "fw2",
        pf: { running: true, states: 1150, srcNodes: 0, stateSearches: 9, stateInserts: 8, stateRemovals: 7, via: "ioctl", pfsyncBulkUpdateDone: false },
        role: "secondary",
        revision: 17,
        appliedRevision: 42,
        carp: { enabled: true, preempt: true, maintenance: true, demotion: 240 },
        pfsync: { enabled: true, running: false, syncdev: "em2", syncpeer: null, bulkUpdateDone: false },
        vhids: [
          { interface: "em0", vhid: 1, state: "MASTER", since: "2025-01-01T00:00:00Z", reason: "master down" },
          { interface: "em0", vhid: 2, state: "BACKUP", since: "2025-01-01T00:00:00Z", reason: "master seen" },
          { interface: "vlan10", vhid: 3, state: "INIT", since: "2025-01-01T00:00:00Z", reason: "link down" },
        ],
      }),
    ],
    splitBrain: [{ interface: "em0", vhid: 1, since: "2025-01-01T00:00:05Z" }],
    pfStateDifference: 50,
  };
  const srv = await fakeCarpd(t, { "GET /v1/cluster": { status: 200, body: cluster } });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(["cluster"], env);
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.startsWith("SPLIT BRAIN: em0 vhid 1 is MASTER on both nodes\n"), r.out);
  assert.match(r.out, /^NODE\s+fw1 \(this node\)\s+fw2$/m);
  assert.match(r.out, /^role\s+primary\s+secondary$/m);
  assert.match(r.out, /^revision\s+42\s+17 \(primary's 42 applied\)$/m);
  assert.match(r.out, /^demotion\s+0\s+240$/m);
  assert.match(r.out, /^maintenance\s+no\s+yes$/m);
  assert.match(r.out, /^pfsync\s+running\s+NOT running$/m);
  assert.match(r.out, /^pf\s+1200 states\s+1150 states, bulk update pending$/m);
  assert.match(r.out, /^pf states: this node has 50 more than the peer \(\+50\)$/m);
  assert.match(r.out, /^INTERFACE\s+VHID\s+fw1\s+fw2$/m);
  assert.match(r.out, /^em0\s+1\s+MASTER\s+MASTER\s+<- MASTER ON BOTH$/m);
  assert.match(r.out, /^em0\s+2\s+MASTER\s+BACKUP$/m);
  assert.match(r.out, /^em1\s+7\s+MASTER\s+-$/m);
  assert.match(r.out, /^vlan10\s+3\s+-\s+INIT$/m);
  const json = await carpctl(["cluster", "--json"], env);
  assert.deepEqual(JSON.parse(json.out), cluster);
});

test("cluster with an unreachable peer shows this node, question marks and the peer's error", async (t) => {
  const error = "the sync peer did not answer: the sync peer 198.51.100.2:8443 is unreachable: connection refused: nothing listens there (ECONNREFUSED)";
  const srv = await fakeCarpd(t, {
    "GET /v1/cluster": {
      status: 200,
      body: { nodes: [clusterNode({}), { self: false, reachable: false, error, node: null }], splitBrain: [] },
    },
  });
  const r = await carpctl(["cluster"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  assert.doesNotMatch(r.out, /SPLIT BRAIN/);
  assert.match(r.out, /^NODE\s+fw1 \(this node\)\s+peer$/m);
  assert.match(r.out, /^role\s+primary\s+\?$/m);
  assert.match(r.out, /^em0\s+1\s+MASTER\s+\?$/m);
  assert.ok(r.out.includes(`peer not reached: ${error}`), r.out);
});

test("--force sends force=true on VIP, CARP and rollback changes, and only there; SYNC_MANAGED says to use it", async (t) => {
  const managed = problem(
    409,
    "CARPD_ERR_SYNC_MANAGED",
    "VIP em0/1 is managed by this node's sync primary (sync peer 198.51.100.1): make the change there, or repeat it with force=true to detach it from sync here",
  );
  const srv = await fakeCarpd(t, {
    "PATCH /v1/vips/em0/1": { status: 409, body: managed },
    "DELETE /v1/vips/em0/1": { status: 204 },
    "POST /v1/vips": { status: 201, body: vip },
    "PATCH /v1/carp": { status: 200, body: status.carp },
    "POST /v1/config/rollback": { status: 200, body: plan },
  });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const refused = await carpctl(["vip", "set", "em0", "1", "--advskew", "7"], env);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /error 409 CARPD_ERR_SYNC_MANAGED: VIP em0\/1 is managed by this node's sync primary/);
  assert.match(refused.err, /^hint: to change it on this secondary anyway, repeat the command with --force/m);
  assert.equal(srv.requests[0].query.get("force"), null);

  for (const argv of [
    ["vip", "rm", "em0", "1", "--force"],
    ["--force", "vip", "add", "em0", "1", "--address", "192.0.2.10/24"],
    ["carp", "set", "--preempt", "false", "--force"],
    ["config", "rollback", "4", "--force", "--dry-run"],
  ]) {
    const r = await carpctl(argv, env);
    assert.equal(r.code, 0, `${argv.join(" ")}: ${r.err}`);
    assert.equal(srv.requests.at(-1)!.query.get("force"), "true", argv.join(" "));
  }
  assert.equal(srv.requests.at(-1)!.query.get("dryRun"), "true");
  const sent = srv.requests.length;
  for (const argv of [["vip", "state", "em0", "1", "backup", "--force"], ["maintenance", "on", "--force"], ["status", "--force"]]) {
    const r = await carpctl(argv, env);
    assert.equal(r.code, 2, argv.join(" "));
    assert.match(r.err, /--force does not apply to/);
  }
  assert.equal(srv.requests.length, sent);
});

test("--help lists the sync commands and cluster", async () => {
  const r = await carpctl(["sync", "--help"], {});
  assert.equal(r.code, 0);
  assert.match(r.out, /carpctl sync identity\n/);
  assert.match(r.out, /carpctl sync set \[--role standalone\|primary\|secondary\] \[--peer ADDR\[:PORT\]\] \[--fingerprint FP\]\n\s+\[--no-peer\]/);
  assert.doesNotMatch(r.out, /carpctl vip add/);
  const all = await carpctl(["--help"], {});
  assert.match(all.out, /^  carpctl cluster$/m);
  assert.match(all.out, /--force\s+on a sync secondary/);
});

test("vip add/set --mac-mode: virtual or interface; set's default sends null; anything else sends nothing", async (t) => {
  const srv = await fakeCarpd(t, {
    "POST /v1/vips": { status: 201, body: { ...vip, macMode: "virtual" } },
    "PATCH /v1/vips/em0/1": { status: 200, body: vip },
  });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const added = await carpctl(["vip", "add", "em0", "1", "--address", "192.0.2.10/24", "--mac-mode", "virtual"], env);
  assert.equal(added.code, 0, added.err);
  assert.equal((srv.requests[0].body as S["VipCreate"]).macMode, "virtual");
  assert.match(added.out, /mac mode:\s+virtual/);
  const reset = await carpctl(["vip", "set", "em0", "1", "--mac-mode", "default"], env);
  assert.equal(reset.code, 0, reset.err);
  assert.deepEqual(srv.requests[1].body, { macMode: null });
  assert.match(reset.out, /mac mode:\s+node default/);
  for (const argv of [["vip", "set", "em0", "1", "--mac-mode", "vmac"], ["vip", "add", "em0", "--address", "192.0.2.10/24", "--mac-mode", "default"]]) {
    const r = await carpctl(argv, env);
    assert.equal(r.code, 2, argv.join(" "));
    assert.match(r.err, /--mac-mode/);
  }
  assert.equal(srv.requests.length, 2);
});

test("status shows a MAC column when the backend reports MACs", async (t) => {
  const withMacs: S["Status"] = {
    ...status,
    vhids: [
      { ...status.vhids[0], mac: "00:00:5e:00:01:01", virtualMac: true },
      { ...status.vhids[1], mac: "02:11:22:33:44:55", virtualMac: false },
    ],
  };
  const srv = await fakeCarpd(t, { "GET /v1/status": { status: 200, body: withMacs } });
  const r = await carpctl(["status"], { CARPD_URL: srv.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split("\n");
  assert.match(lines.find((l) => l.startsWith("INTERFACE")) ?? "", /ADVSKEW\s+MAC$/);
  assert.match(lines.find((l) => l.startsWith("em0")) ?? "", /00:00:5e:00:01:01 \(virtual\)$/);
  assert.match(lines.find((l) => l.startsWith("vlan100")) ?? "", /02:11:22:33:44:55$/);
});

test("doctor prints the findings grouped by severity, worst first, with evidence and fix, the checks not made, and exits 1 from warning up", async (t) => {
  const body: S["Diagnostics"] = {
    generatedAt: "2026-01-01T00:00:00.000Z",
    node: "fw1",
    worst: "critical",
    findings: [
      {
        code: "CARPD_DIAG_SPLIT_BRAIN",
        severity: "critical",
        summary: "em0 vhid 1 is MASTER on both nodes",
        objects: [{ interface: "em0", vhid: 1 }],
        evidence: [
          { node: "fw1", values: { state: "MASTER", since: null } },
          { node: "fw2", values: { state: "MASTER" } },
        ],
        fix: "use unicast",
      },
      { code: "CARPD_DIAG_PREEMPT_DIFFERS", severity: "warning", summary: "preempt differs", objects: [{ node: "fw1" }, { node: "fw2" }], evidence: [], fix: "same preempt" },
    ],
    checks: [
      { code: "CARPD_DIAG_SPLIT_BRAIN", status: "finding" },
      { code: "CARPD_DIAG_PREEMPT_DIFFERS", status: "finding" },
      { code: "CARPD_DIAG_CLOCK_SKEW", status: "pass" },
      { code: "CARPD_DIAG_FOREIGN_ADVERTISER", status: "not-checked", reason: "no sources recorded" },
    ],
  };
  const srv = await fakeCarpd(t, { "GET /v1/cluster/diagnostics": { status: 200, body } });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  const r = await carpctl(["doctor"], env);
  assert.equal(r.code, 1, r.err);
  assert.ok(r.out.startsWith("CRITICAL (1)\n  CARPD_DIAG_SPLIT_BRAIN: em0 vhid 1 is MASTER on both nodes\n"), r.out);
  assert.match(r.out, /^    concerns: em0 vhid 1$/m);
  assert.match(r.out, /^    evidence: fw1: state=MASTER since=-$/m);
  assert.match(r.out, /^    evidence: fw2: state=MASTER$/m);
  assert.match(r.out, /^    fix: use unicast$/m);
  assert.ok(r.out.indexOf("WARNING (1)") > r.out.indexOf("CRITICAL (1)"), "worst first");
  assert.match(r.out, /^    concerns: node fw1, node fw2$/m);
  assert.match(r.out, /^4 checks: 1 passed, 2 with findings, 1 not checked$/m);
  assert.match(r.out, /^  not checked CARPD_DIAG_FOREIGN_ADVERTISER: no sources recorded$/m);
  const json = await carpctl(["doctor", "--json"], env);
  assert.equal(json.code, 1);
  assert.deepEqual(JSON.parse(json.out), body);
});

test("doctor exits 0 when nothing is above info", async (t) => {
  const info: S["Diagnostics"] = {
    generatedAt: "2026-01-01T00:00:00.000Z",
    node: "fw1",
    worst: "info",
    findings: [{ code: "CARPD_DIAG_SYNC_DETACHED", severity: "info", summary: "s", objects: [], evidence: [], fix: "f" }],
    checks: [{ code: "CARPD_DIAG_SYNC_DETACHED", status: "finding" }],
  };
  const none: S["Diagnostics"] = { ...info, worst: null, findings: [], checks: [{ code: "CARPD_DIAG_SPLIT_BRAIN", status: "pass" }] };
  const srv = await fakeCarpd(t, { "GET /v1/cluster/diagnostics": { status: 200, body: info } });
  const env = { CARPD_URL: srv.url, CARPD_TOKEN: "x" };
  let r = await carpctl(["doctor"], env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^INFO \(1\)$/m);
  const srv2 = await fakeCarpd(t, { "GET /v1/cluster/diagnostics": { status: 200, body: none } });
  r = await carpctl(["doctor"], { CARPD_URL: srv2.url, CARPD_TOKEN: "x" });
  assert.equal(r.code, 0);
  assert.match(r.out, /^no findings on fw1$/m);
  assert.equal((await carpctl(["doctor", "extra"], env)).code, 2);
});
