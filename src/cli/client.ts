import type { components } from "../api/generated/carpd.js";
import { CliError, type Ctx } from "./io.js";
import { table } from "./table.js";

type Problem = components["schemas"]["Problem"];
type Plan = components["schemas"]["Plan"];

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** Resolves to the response body, or throws a CliError that says what to do next. */
export async function ok<T>(ctx: Ctx, pending: Promise<Result<T>>): Promise<{ data: T; response: Response }> {
  let res: Result<T>;
  try {
    res = await pending;
  } catch (err) {
    throw new CliError(connectionMessage(ctx, err));
  }
  if (!res.response.ok) throw new CliError(problemMessage(ctx, res.response, res.error));
  return { data: res.data as T, response: res.response };
}

function connectionMessage(ctx: Ctx, err: unknown): string {
  // Already says what happened and what to do (an untrusted or unpinned certificate).
  if (err instanceof CliError) return err.message;
  if (err instanceof SyntaxError) {
    return (
      `the answer from ${ctx.url} is not valid JSON (${err.message})\n` +
      `hint: does --url / CARPD_URL point at carpd?`
    );
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
  return (
    `cannot reach carpd at ${ctx.url} (${why})\n` +
    `hint: is carpd running? it listens on ${ctx.url} (--url / CARPD_URL)`
  );
}

function isProblem(v: unknown): v is Problem {
  return typeof v === "object" && v !== null && typeof (v as Problem).code === "string";
}

function problemMessage(ctx: Ctx, response: Response, body: unknown): string {
  const lines: string[] = [];
  if (isProblem(body)) {
    lines.push(`error ${response.status} ${body.code}: ${body.detail}`);
    for (const e of body.errors ?? []) lines.push(`  ${e.path || "(body)"}: ${e.message}`);
    if (body.kernel) {
      const k = body.kernel;
      lines.push(`  kernel: ${k.operation}${k.interface ? ` on ${k.interface}` : ""} failed: ${k.errnoName} (${k.errno})`);
    }
  } else {
    const text = typeof body === "string" ? body.trim().slice(0, 300) : "";
    lines.push(`error ${response.status} ${response.statusText}${text ? `: ${text}` : ""}`);
  }
  const hint = hintFor(ctx, response.status, isProblem(body) ? body : undefined);
  if (hint) lines.push(`hint: ${hint}`);
  return lines.join("\n");
}

function hintFor(ctx: Ctx, status: number, p: Problem | undefined): string | undefined {
  switch (p?.code) {
    case "CARPD_ERR_SYNC_MANAGED":
      return (
        "to change it on this secondary anyway, repeat the command with --force: it then leaves sync " +
        "until 'carpctl sync set --reattach KEY'"
      );
    case "CARPD_ERR_SYNC_NOT_CONFIGURED":
      return (
        "pair the nodes: 'carpctl sync identity' on each, then 'carpctl sync set --role ... --peer ... " +
        "--fingerprint ...' on each with the other's values"
      );
    case "CARPD_ERR_SYNC_PEER_UNREACHABLE":
      return (
        "check the peer's --sync-listen address and port, the path between the sync interfaces, and that " +
        "the pinned fingerprint is what 'carpctl sync identity' prints on the peer ('carpctl sync status' has the last error)"
      );
  }
  switch (status) {
    case 401:
      return (
        `the token was refused: pass --token, set CARPD_TOKEN, or check ${ctx.stateDir}/admin.token` +
        ` (token used: ${ctx.tokenSource})`
      );
    case 403:
      return "this token may only read: use an admin token for changes";
    case 412:
      return (
        `the desired state changed meanwhile` +
        (p?.currentRevision !== undefined ? ` (now revision ${p.currentRevision})` : "") +
        `: re-read it, then retry with the new --if-match`
      );
    default:
      return undefined;
  }
}

/** The revision from an ETag header (`"42"` → `42`). */
export function etagRevision(response: Response): string | undefined {
  const tag = response.headers.get("ETag");
  return tag ? tag.replace(/^W\//, "").replace(/"/g, "") : undefined;
}

export function revisionNote(response: Response): string {
  const rev = etagRevision(response);
  return rev ? ` (revision ${rev})` : "";
}

/** The query and header parameters shared by every mutating request. */
export function writeParams(ctx: Ctx): {
  query: { dryRun?: boolean; force?: boolean };
  header: { "If-Match"?: string };
} {
  return {
    query: { ...(ctx.dryRun ? { dryRun: true } : {}), ...(ctx.force ? { force: true } : {}) },
    header: ctx.ifMatch ? { "If-Match": ctx.ifMatch } : {},
  };
}

export function isPlan(v: unknown): v is Plan {
  return typeof v === "object" && v !== null && (v as Plan).dryRun === true && Array.isArray((v as Plan).steps);
}

export function renderPlan(
  plan: Plan,
  head = `dry run from revision ${plan.fromRevision}: nothing was applied or stored`,
): string {
  const lines = [head];
  if (plan.changes.length) {
    lines.push("changes:");
    for (const c of plan.changes) lines.push(`  ${c}`);
  } else {
    lines.push("changes: none");
  }
  if (plan.steps.length) {
    lines.push(table(["OP", "TARGET", "DETAIL"], plan.steps.map((s) => [s.op, s.target, s.detail])));
  } else {
    lines.push("steps: none");
  }
  return lines.join("\n");
}

/**
 * Prints a mutation's answer: raw JSON with --json, the plan on a dry run,
 * else what `human` renders.
 */
export function printResult<T>(ctx: Ctx, data: T | Plan, human: (d: T) => string): void {
  if (ctx.json) {
    if (data !== undefined) ctx.out(JSON.stringify(data, null, 2));
  } else if (isPlan(data)) {
    ctx.out(renderPlan(data));
  } else {
    ctx.out(human(data as T));
  }
}

export function printJson(ctx: Ctx, data: unknown): void {
  ctx.out(JSON.stringify(data, null, 2));
}
