/**
 * carpd with `--backend linux` in a node namespace of a Lan (netns.ts), for the namespace tests
 * and the failover bench: setUpLan() makes the Lan and a temporary root for the state
 * directories, startLinuxNode() starts carpd listening on the node's management address and
 * returns the calls made to it (the API with its admin token, adding a VIP, a vhid's state and
 * reason from /v1/status, the CARP counters of /v1/stats). holdsAddress() reads the kernel's own
 * view of a node's lan0, never carpd's word for it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { call, startDaemon, type Reply, type RunningDaemon } from './daemon.js';
import { createLan, type Lan } from './netns.js';

const PORT = 8080;

interface TestContextLike {
  after(fn: () => unknown): void;
}

/** A Lan of `nodes` namespaces and a temporary directory named `tmpPrefix…`, both removed by t.after. */
export async function setUpLan(t: TestContextLike, opts: { nodes: number; ipv6?: boolean }, tmpPrefix: string): Promise<{ lan: Lan; root: string }> {
  const lan = await createLan(opts);
  t.after(() => lan.destroy());
  const root = mkdtempSync(path.join(tmpdir(), tmpPrefix));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return { lan, root };
}

/** One vhid as GET /v1/status lists it. */
export interface VhidStatus {
  interface: string;
  vhid: number;
  state: string;
  reason: string;
  [k: string]: unknown;
}

export interface LinuxNode {
  /** Its namespace is lan.nodes[i]. */
  i: number;
  name: string;
  d: RunningDaemon;
  token: string;
  stateDir: string;
  /** A request to its API with the admin token. */
  api(method: string, url: string, body?: unknown): Promise<Reply>;
  /** POST /v1/vips with body, asserting 201. */
  addVip(body: Record<string, unknown>): Promise<Reply>;
  /** Every vhid of GET /v1/status. */
  vhids(): Promise<VhidStatus[]>;
  /** The vhid on lan0 (or iface), undefined when it has none. */
  vhid(vhid: number, iface?: string): Promise<VhidStatus | undefined>;
  /** That vhid's state. */
  state(vhid: number, iface?: string): Promise<string | undefined>;
  /** The CARP counters of GET /v1/stats (VRRP's too). */
  carp(): Promise<Record<string, number>>;
}

/**
 * Starts carpd in lan.nodes[i] with its state under root/NAME (NAME defaults to node<i>) and
 * resolves once it listens; args are added to its command line. t.after kills it.
 */
export async function startLinuxNode(t: TestContextLike, lan: Lan, root: string, i: number, opts: { name?: string; args?: string[] } = {}): Promise<LinuxNode> {
  const name = opts.name ?? `node${i}`;
  const n = lan.nodes[i];
  const stateDir = path.join(root, name);
  const d = await startDaemon(t, ['--listen', `${n.mgmtAddress}:${PORT}`, '--insecure-http', '--state-dir', stateDir, '--backend', 'linux', '--node-name', name, ...(opts.args ?? [])], { netns: n.ns });
  const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
  const api = (method: string, url: string, body?: unknown) => call(PORT, method, url, { host: n.mgmtAddress, token, body });
  const vhids = async () => {
    const r = await api('GET', '/v1/status');
    assert.equal(r.status, 200, r.text);
    return r.body.vhids as VhidStatus[];
  };
  const vhid = async (id: number, iface = 'lan0') => (await vhids()).find((x) => x.interface === iface && x.vhid === id);
  return {
    i,
    name,
    d,
    token,
    stateDir,
    api,
    addVip: async (body) => {
      const r = await api('POST', '/v1/vips', body);
      assert.equal(r.status, 201, r.text);
      return r;
    },
    vhids,
    vhid,
    state: async (id, iface) => (await vhid(id, iface))?.state,
    carp: async () => (await api('GET', '/v1/stats')).body.carp as Record<string, number>,
  };
}

/** Whether lan0 of lan.nodes[i] carries address (with any prefix length), as the kernel says. */
export async function holdsAddress(lan: Lan, i: number, address: string): Promise<boolean> {
  return (await lan.addresses(lan.nodes[i].ns, 'lan0')).some((a) => a.startsWith(`${address}/`));
}
