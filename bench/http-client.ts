/**
 * An HTTP client in a process of its own, for benchmarks that time a request as an outside
 * client sees it without the client's work sharing the server's event loop. Started with
 * `startHttpClient()`; each `request` goes over IPC, is sent on one kept-alive connection
 * (node:http), and comes back with its status, its body and the milliseconds from the request
 * written to the answer's last byte, measured in this process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

export interface ClientRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

export interface ClientAnswer {
  status: number;
  text: string;
  ms: number;
}

export interface HttpClient {
  request(r: ClientRequest): Promise<ClientAnswer>;
  close(): void;
}

const CHILD_FLAG = '--http-client';

export function startHttpClient(): HttpClient {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<number, { resolve: (a: ClientAnswer) => void; reject: (e: Error) => void }>();
  let next = 0;
  child.on('message', (m: { id: number; answer?: ClientAnswer; error?: string }) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.answer) w?.resolve(m.answer);
    else w?.reject(new Error(m.error ?? 'the client process failed'));
  });
  child.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`the client process exited (${code})`));
    waiting.clear();
  });
  return {
    request(r) {
      const id = next++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.send({ id, request: r });
      });
    },
    close() {
      child.disconnect();
    },
  };
}

function serve(): void {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  process.on('message', ({ id, request: r }: { id: number; request: ClientRequest }) => {
    const headers = { ...r.headers, ...(r.body !== undefined && { 'content-length': String(Buffer.byteLength(r.body)) }) };
    const t0 = process.hrtime.bigint();
    const req = http.request(r.url, { agent, method: r.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        process.send!({ id, answer: { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), ms } });
      });
    });
    req.on('error', (e) => process.send!({ id, error: e.message }));
    req.end(r.body);
  });
  process.on('disconnect', () => agent.destroy());
}

if (process.argv[2] === CHILD_FLAG) serve();
