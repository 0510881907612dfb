/**
 * The probes of health tracks, one per kind. Each answers a ProbeResult and never throws; each
 * ends by its timeout (and when `signal` aborts): a probe that cannot decide in time failed.
 *
 *  - tcp: a connect to target:port (net.connect), closed at once;
 *  - http: a GET of the URL (fetch, no redirects followed), up when the status is in
 *    statusMin..statusMax; the body is not read;
 *  - script: command[0] with its arguments (no shell, no PATH search) in its own process group,
 *    up when it exits 0; at the timeout the group gets SIGKILL;
 *  - interface: the backend's link state (CarpService.linkUp);
 *  - ping: an ICMP echo through the Pinger the daemon hands in (kernel/ping.ts: a raw socket
 *    through koffi; this layer never touches FFI).
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { TrackConfig } from '../config/model.js';
import type { ProbeResult } from '../service/tracks.js';

/** ICMP echo: `ok` when a reply with this probe's identifier and sequence came back in time. */
export interface Pinger {
  ping(target: string, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult>;
  close(): void;
}

export interface ProbeDeps {
  /** The link of an interface (undefined: the backend cannot tell). */
  linkUp(iface: string): Promise<boolean | undefined>;
  /** Absent: ping tracks fail, saying this carpd cannot ping. */
  pinger?: Pinger;
}

export const SCRIPT_PATH = '/usr/bin:/bin:/usr/sbin:/sbin';
const ms = (start: number) => Math.round((performance.now() - start) * 1000) / 1000;
const fail = (start: number, detail: string): ProbeResult => ({ ok: false, ms: ms(start), detail });
const errText = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);

export function probeTcp(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let done = false;
    const end = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(r);
    };
    const onAbort = () => end(fail(start, `no connection to ${host}:${port} within ${timeoutMs} ms`));
    const timer = setTimeout(onAbort, timeoutMs);
    signal.addEventListener('abort', onAbort);
    sock.once('connect', () => end({ ok: true, ms: ms(start), detail: `connected to ${host}:${port}` }));
    sock.once('error', (e) => end(fail(start, `connect to ${host}:${port}: ${errText(e)}`)));
  });
}

export async function probeHttp(url: string, min: number, max: number, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const start = performance.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const onAbort = () => ac.abort();
  signal.addEventListener('abort', onAbort);
  try {
    const res = await fetch(url, { signal: ac.signal, redirect: 'manual', headers: { 'user-agent': 'carpd-track' } });
    void res.body?.cancel().catch(() => {});
    const ok = res.status >= min && res.status <= max;
    return { ok, ms: ms(start), detail: `HTTP ${res.status}${ok ? '' : ` (expected ${min}..${max})`}` };
  } catch (e) {
    if (ac.signal.aborted) return fail(start, `no answer from ${url} within ${timeoutMs} ms`);
    const cause = (e as { cause?: unknown }).cause;
    return fail(start, `GET ${url}: ${cause ? errText(cause) : errText(e)}`);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

export function probeScript(command: readonly string[], timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let stderr = '';
    const child = spawn(command[0], command.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: SCRIPT_PATH }, cwd: '/' });
    const kill = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    };
    const end = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onTimeout);
      resolve(r);
    };
    const onTimeout = () => {
      kill();
      end(fail(start, `${command[0]} did not exit within ${timeoutMs} ms (killed)`));
    };
    const timer = setTimeout(onTimeout, timeoutMs);
    signal.addEventListener('abort', onTimeout);
    child.stderr?.on('data', (b: Buffer) => {
      if (stderr.length < 200) stderr += b.toString('utf8');
    });
    child.once('error', (e) => end(fail(start, `cannot start ${command[0]}: ${errText(e)}`)));
    child.once('close', (code, sig) => {
      const said = stderr.trim().split('\n')[0]?.slice(0, 200);
      if (code === 0) end({ ok: true, ms: ms(start), detail: 'exit 0' });
      else end(fail(start, `${sig ? `killed by ${sig}` : `exit ${code}`}${said ? `: ${said}` : ''}`));
    });
  });
}

export async function probeInterface(deps: ProbeDeps, iface: string): Promise<ProbeResult> {
  const start = performance.now();
  try {
    const up = await deps.linkUp(iface);
    if (up === undefined) return fail(start, `this backend cannot report the link of ${iface}`);
    return { ok: up, ms: ms(start), detail: `link of ${iface} ${up ? 'up' : 'down'}` };
  } catch (e) {
    return fail(start, `link of ${iface}: ${(e as Error).message}`);
  }
}

/** The probe of a track's kind. */
export async function probe(t: TrackConfig, deps: ProbeDeps, signal: AbortSignal): Promise<ProbeResult> {
  switch (t.kind) {
    case 'tcp':
      return probeTcp(t.target!, t.port!, t.timeoutMs, signal);
    case 'http':
      return probeHttp(t.url!, t.statusMin ?? 200, t.statusMax ?? 399, t.timeoutMs, signal);
    case 'script':
      return probeScript(t.command!, t.timeoutMs, signal);
    case 'interface':
      return probeInterface(deps, t.interface!);
    case 'ping':
      if (!deps.pinger) return { ok: false, ms: 0, detail: 'this carpd cannot send ICMP echo requests (no pinger on this platform)' };
      try {
        return await deps.pinger.ping(t.target!, t.timeoutMs, signal);
      } catch (e) {
        return { ok: false, ms: 0, detail: `ping ${t.target}: ${(e as Error).message}` };
      }
  }
}
