/**
 * Memory benchmark: the resident set size (RSS) of an idle carpd with 10 and with 1000 VIPs.
 *
 * Each case runs the compiled daemon as an operator would, `node [flags] dist/daemon/main.js
 * --backend memory` with the Node.js flags of that build's `npm start` (the same as bin/carpd.js
 * and the rc.d script's `carpd_node_flags`; test/node-flags.test.ts keeps them equal), with its own state dir and a bootstrap file (--config) holding the VIPs (documentation
 * addresses, 250 per interface em0..em3, advskew 0):
 *   1. first start: the bootstrap file is applied (one revision with every VIP); then SIGTERM;
 *   2. restart on the same state dir, the case measured as "idle": the file is unchanged and not
 *      applied again, the backend is reconciled to the stored revision, as after a reboot.
 * After each start the VIPs elect themselves MASTER (the memory backend's master-down interval,
 * about 3 s), then GET /v1/status, /v1/vips and /v1/config are asked once each (what a first
 * look at a node costs: each operation's schemas are compiled on first use), then RSS is read
 * every second for BENCH_IDLE seconds with no request at all. Reported: RSS when "listening" was
 * logged, the highest RSS of the idle window and the last one. RSS is read from /proc/<pid>/status
 * (VmRSS) where there is /proc, else from `ps -o rss=`.
 *
 * BENCH_BASELINE_REF=<git ref> measures that commit too, side by side: it is exported with `git
 * archive` into a temporary directory, given this checkout's node_modules, and compiled; it
 * needs whatever dependencies that commit imports to be installed here.
 *
 * The breakdown section starts fresh processes that import carpd's dependencies one after the
 * other and print RSS after each: where the memory of a process that has done nothing yet goes.
 *
 *   npm run bench:memory
 *   BENCH_VIPS=10,1000 BENCH_IDLE=20 BENCH_BASELINE_REF=59a252e npm run bench:memory
 *
 * `npm run bench:memory` compiles dist/ first. Results go to stdout and bench/results/memory-latest.md.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { gitRevision, ROOT } from './common.js';

const VIPS = (process.env.BENCH_VIPS ?? '10,1000').split(',').map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 0 || n > 1000) throw new Error(`BENCH_VIPS: "${s}" is not an integer from 0 to 1000`);
  return n;
});
const IDLE_S = Number(process.env.BENCH_IDLE ?? 20);
if (!Number.isInteger(IDLE_S) || IDLE_S < 1) throw new Error('BENCH_IDLE: a positive number of seconds');
const BASELINE_REF = process.env.BENCH_BASELINE_REF;
const MiB = 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (bytes: number) => (bytes / MiB).toFixed(1);

/** VmRSS of a process, in bytes. */
function rssOf(pid: number): number {
  if (existsSync(`/proc/${pid}/status`)) {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (!m) throw new Error(`no VmRSS for ${pid}`);
    return Number(m[1]) * 1024;
  }
  return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) * 1024;
}

/** A bootstrap file with `n` VIPs: 250 per interface, one documentation address each. */
function bootstrap(n: number): string {
  const nets = ['192.0.2.', '198.51.100.', '203.0.113.'];
  const vips = Array.from({ length: n }, (_, i) => {
    const k = Math.floor(i / 250);
    const vhid = (i % 250) + 1;
    const address = k < 3 ? `${nets[k]}${vhid}/24` : `2001:db8:${k}::${vhid.toString(16)}/64`;
    return { interface: `em${k}`, vhid, addresses: [address], advskew: 0 };
  });
  return JSON.stringify({ vips });
}

function get(port: number, url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Run {
  listening: number;
  max: number;
  last: number;
}

/** Starts the daemon of `dist`, waits for "listening", the election and the warm-up GETs, then samples RSS. */
/** The Node.js flags `npm start` of the checkout at `dir` gives the daemon (none before there were any). */
function nodeFlagsOf(dir: string): string[] {
  const start = (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts?.start ?? '';
  const m = /^node((?: --[^ ]+)*) dist\/daemon\/main\.js$/.exec(start);
  if (!m) throw new Error(`${dir}/package.json: npm start is "${start}", not "node [flags] dist/daemon/main.js"`);
  return m[1].trim().split(' ').filter(Boolean);
}

async function run(dist: string, stateDir: string, config: string): Promise<Run> {
  const child: ChildProcess = spawn(process.execPath, [...nodeFlagsOf(path.dirname(dist)), path.join(dist, 'daemon/main.js'), '--backend', 'memory', '--listen', '127.0.0.1:0', '--state-dir', stateDir, '--config', config, '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    let out = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening" line within 60 s:\n${out}`)), 60_000);
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        const m = /"event":"listening","address":"[^"]*:(\d+)"/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.on('exit', (code) => reject(new Error(`carpd exited (${code}) before listening:\n${out}`)));
    });
    const listening = rssOf(child.pid!);
    // The memory backend elects MASTER after 3 × advbase + advskew/256 s with nobody to hear.
    await sleep(3500);
    const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
    for (const url of ['/v1/status', '/v1/vips', '/v1/config']) {
      const status = await get(port, url, token);
      if (status !== 200) throw new Error(`GET ${url}: HTTP ${status}`);
    }
    let max = 0;
    let last = 0;
    for (let i = 0; i < IDLE_S; i++) {
      await sleep(1000);
      last = rssOf(child.pid!);
      max = Math.max(max, last);
    }
    return { listening, max, last };
  } finally {
    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) process.stderr.write(`bench: carpd exited with ${code} after SIGTERM\n`);
  }
}

interface Row {
  build: string;
  vips: number;
  first: Run;
  idle: Run;
}

async function measure(build: string, dist: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of VIPS) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'carpd-bench-mem-'));
    try {
      const config = path.join(dir, 'vips.json');
      writeFileSync(config, bootstrap(n));
      const stateDir = path.join(dir, 'state');
      process.stderr.write(`bench: ${build}, ${n} VIPs: first start\n`);
      const first = await run(dist, stateDir, config);
      process.stderr.write(`bench: ${build}, ${n} VIPs: restart (idle ${IDLE_S} s)\n`);
      const idle = await run(dist, stateDir, config);
      rows.push({ build, vips: n, first, idle });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

/** A commit compiled in a temporary directory, with this checkout's node_modules. */
function buildRef(ref: string): { dir: string; dist: string; name: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carpd-bench-ref-'));
  const name = execFileSync('git', ['rev-parse', '--short', ref], { cwd: ROOT, encoding: 'utf8' }).trim();
  process.stderr.write(`bench: building ${ref} (${name}) in ${dir}\n`);
  const archive = execFileSync('git', ['archive', '--format=tar', ref], { cwd: ROOT, maxBuffer: 256 * MiB });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: dir, stdio: 'inherit' });
  return { dir, dist: path.join(dir, 'dist'), name };
}

/** RSS after each step of `steps`, in one fresh process per ladder. */
function ladder(cwd: string, steps: [string, string][]): [string, number, number][] {
  const code = [
    `const out = [];`,
    `const m = () => { const u = process.memoryUsage(); return [u.rss, u.heapUsed]; };`,
    `out.push(['node ' + process.version + ', nothing loaded', ...m()]);`,
    ...steps.map(([label, js]) => `${js}; out.push([${JSON.stringify(label)}, ...m()]);`),
    `process.stdout.write(JSON.stringify(out));`,
  ].join('\n');
  const text = execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd, encoding: 'utf8' });
  return JSON.parse(text) as [string, number, number][];
}

function ladderTable(rows: [string, number, number][]): string {
  const lines = ['| step (cumulative) | RSS MiB | + MiB | JS heap used MiB |', '|---|---:|---:|---:|'];
  let prev = 0;
  for (const [label, rss, heap] of rows) {
    lines.push(`| ${label} | ${fmt(rss)} | ${prev === 0 ? '' : fmt(rss - prev)} | ${fmt(heap)} |`);
    prev = rss;
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const builds: { name: string; dist: string }[] = [{ name: `this checkout (${gitRevision() ?? 'no git'})`, dist: path.join(ROOT, 'dist') }];
  const cleanup: string[] = [];
  try {
    if (BASELINE_REF) {
      const ref = buildRef(BASELINE_REF);
      cleanup.push(ref.dir);
      builds.unshift({ name: `${BASELINE_REF} (${ref.name})`, dist: ref.dist });
    }
    const rows: Row[] = [];
    for (const b of builds) {
      const flags = nodeFlagsOf(path.dirname(b.dist)).join(' ');
      rows.push(...(await measure(`${b.name}, node ${flags === '' ? 'without flags' : flags}`, b.dist)));
    }

    const imports: [string, string][] = [
      ['+ express', `await import('express')`],
      ['+ pino', `await import('pino')`],
      ['+ ajv (2020) and ajv-formats', `await import('ajv/dist/2020.js'); await import('ajv-formats')`],
      ["+ carpd's modules (dist/daemon/main.js's imports)", `await import('./dist/api/app.js'); await import('./dist/daemon/backends.js'); await import('./dist/sync/manager.js'); await import('./dist/daemon/bootstrap.js')`],
      ['+ the spec, JSON.parse of openapi/carpd.json', `const { loadSpec } = await import('./dist/api/spec.js'); globalThis.spec = loadSpec()`],
      [
        '+ the schemas of GET /v1/status, /v1/vips, /v1/config compiled',
        `const { SpecValidator } = await import('./dist/api/validator.js'); const v = new SpecValidator(globalThis.spec); for (const p of ['/v1/status', '/v1/vips', '/v1/config']) v.schema('#/paths/' + p.replace(/\\//g, '~1') + '/get/responses/200/content/application~1json/schema')`,
      ],
    ];
    const forComparison: [string, string][] = [
      ['+ express', `await import('express')`],
      ['+ swagger-ui-express (now loaded on the first /docs request)', `await import('swagger-ui-express')`],
      ['+ yaml, and a parse of openapi/carpd.yaml (now read as JSON)', `const { parse } = await import('yaml'); const { readFileSync } = await import('node:fs'); globalThis.y = parse(readFileSync('openapi/carpd.yaml', 'utf8'))`],
    ];
    const eov = existsSync(path.join(ROOT, 'node_modules/express-openapi-validator'));
    if (eov) forComparison.push(['+ express-openapi-validator (no longer used), imported only', `await import('express-openapi-validator')`]);
    const steps = ladder(ROOT, imports);
    const others = ladder(ROOT, forComparison);

    const cpus = os.cpus();
    const table = [
      '| build | VIPs | start | RSS at "listening" | idle RSS, highest | idle RSS, last |',
      '|---|---:|---|---:|---:|---:|',
      ...rows.flatMap((r) => [
        `| ${r.build} | ${r.vips} | first (bootstrap applied) | ${fmt(r.first.listening)} | ${fmt(r.first.max)} | ${fmt(r.first.last)} |`,
        `| ${r.build} | ${r.vips} | **restart** | ${fmt(r.idle.listening)} | **${fmt(r.idle.max)}** | ${fmt(r.idle.last)} |`,
      ]),
    ].join('\n');
    const report = [
      '# carpd memory benchmark',
      '',
      `- Date: ${new Date().toISOString()}`,
      `- Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; 1-minute load average ${loadBefore.toFixed(2)} before the run`,
      `- Node ${process.version}; \`node [npm start's flags] dist/daemon/main.js --backend memory\`, logs at info to a pipe; ${IDLE_S} s idle window after the election and one GET each of /v1/status, /v1/vips, /v1/config`,
      '',
      'RSS in MiB:',
      '',
      table,
      '',
      '## Where a fresh process\'s memory goes (RSS after each import, one process)',
      '',
      ladderTable(steps),
      '',
      'For comparison, what carpd no longer loads at start (another fresh process):',
      '',
      ladderTable(others),
      '',
    ].join('\n');
    process.stdout.write('\n' + report);
    mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(path.join(ROOT, 'bench/results/memory-latest.md'), report);
    process.stderr.write('bench: written to bench/results/memory-latest.md\n');
  } finally {
    for (const d of cleanup) rmSync(d, { recursive: true, force: true });
  }
}

await main();
