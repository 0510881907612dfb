/**
 * carpctl events: carpd's events as they happen (GET /v1/events, Server-Sent Events), one line
 * each, or one JSON object per line with --json. A dropped connection is opened again with the
 * last id seen (Last-Event-ID), so nothing is missed while carpd keeps it; carpd says so with an
 * `events.lost` event when it did not.
 */
import type { components } from "../api/generated/carpd.js";
import { expectArgs, int } from "./args.js";
import { CliError, UsageError, type Ctx } from "./io.js";
import { ok } from "./client.js";
import type { Command } from "./command.js";
import { SseParser } from "./sse.js";

type Event = components["schemas"]["Event"];

/** One event in words, after its time and type. */
export function describeEvent(e: Event): string {
  switch (e.type) {
    case "vhid.state": {
      const d = e.data;
      return `${d.interface} vhid ${d.vhid}: ${d.from} -> ${d.to} (${d.reason})${d.effectiveSkew === null ? "" : ` effective skew ${d.effectiveSkew}`}`;
    }
    case "demotion":
      return `demotion ${e.data.previous} -> ${e.data.total}${e.data.contributors.length ? ` (${e.data.contributors.map((c) => `${c.name} ${c.value}`).join(", ")})` : ""}`;
    case "maintenance":
      return e.data.enabled ? "maintenance mode entered" : "maintenance mode left";
    case "config.committed":
      return `revision ${e.data.revision} by ${e.data.actor}: ${e.data.summary}`;
    case "sync.pushed":
      return `revision ${e.data.revision} pushed to ${e.data.peer}: ${e.data.detail}`;
    case "sync.applied":
      return `primary's revision ${e.data.primaryRevision} applied as revision ${e.data.revision}`;
    case "sync.failed":
      return `push of revision ${e.data.revision} to ${e.data.peer} failed: ${e.data.error} (retry in ${Math.round(e.data.retryInMs / 1000)} s)`;
    case "sync.rejected":
      return `sync message from ${e.data.source} refused (${e.data.reason}): ${e.data.detail}`;
    case "splitbrain.detected":
      return `SPLIT BRAIN: ${e.data.interface} vhid ${e.data.vhid} is MASTER here and on ${e.data.peer} (policy ${e.data.policy})`;
    case "splitbrain.cleared":
      return `split brain on ${e.data.interface} vhid ${e.data.vhid} ended after ${e.data.seconds} s`;
    case "pfsync":
      return `pfsync ${e.data.phase}${e.data.syncdev ? ` on ${e.data.syncdev}` : ""}: ${e.data.detail}`;
    case "auth.failed":
      return `authentication failed from ${e.data.source} (${e.data.method} ${e.data.route}): ${e.data.reason}`;
    case "hook.succeeded":
      return `hook ${e.data.hook} ran for event ${e.data.eventId} (${e.data.eventType}) in ${e.data.ms} ms`;
    case "hook.failed":
      return `hook ${e.data.hook} failed for event ${e.data.eventId} (${e.data.eventType}): ${e.data.reason}`;
    case "webhook.delivered":
      return `webhook ${e.data.webhook} delivered event ${e.data.eventId} (HTTP ${e.data.status}, ${e.data.attempts} attempt${e.data.attempts === 1 ? "" : "s"})`;
    case "webhook.failed":
      return `webhook ${e.data.webhook} failed${e.data.eventId === null ? "" : ` for event ${e.data.eventId}`}: ${e.data.reason}${e.data.dropped ? " (dropped)" : ""}`;
    case "events.lost":
      return `events after ${e.data.after} were lost (${e.data.reason})${e.data.oldest === null ? "" : `; the oldest kept is ${e.data.oldest}`}`;
    case "loop.stalled":
      return `event loop stalled for ${e.data.ms} ms${e.data.vhids.length ? `; timers delayed for ${e.data.vhids.map((v) => `${v.interface} vhid ${v.vhid}`).join(", ")}` : ""}`;
    case "switchover.started":
      return `switchover ${e.data.job} started on ${e.data.from}${e.data.back ? " (back to this node)" : e.data.to ? ` towards ${e.data.to}` : ""}`;
    case "switchover.step":
      return `switchover ${e.data.job}: ${e.data.step} ${e.data.status}${e.data.detail ? `: ${e.data.detail}` : ""}`;
    case "switchover.finished":
      return `switchover ${e.data.job} ${e.data.state} after ${e.data.ms} ms: ${e.data.reason}`;
    case "track.changed":
      return `track ${e.data.track} (${e.data.kind}) ${e.data.from} -> ${e.data.to}: ${e.data.reason}${e.data.demotion ? `; demotes by ${e.data.demotion}` : ""}`;
  }
}

const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 15_000;

export const eventsCommands: Command[] = [
  {
    words: ["events"],
    synopsis: "[--types TYPE,...] [--after ID] [--count N]",
    summary:
      "print carpd's events as they happen (vhid states, demotion, commits, sync, split brain, hooks), reconnecting without losing any; --json: one object per line",
    options: { types: { type: "string" }, after: { type: "string" }, count: { type: "string" } },
    async run(ctx, args, values) {
      expectArgs("events", args, []);
      const types = typeof values.types === "string" ? values.types : undefined;
      let lastId = typeof values.after === "string" ? String(int("--after", values.after, 0, Number.MAX_SAFE_INTEGER)) : undefined;
      const count = typeof values.count === "string" ? int("--count", values.count, 1, 1_000_000) : undefined;
      let printed = 0;
      let delay = RECONNECT_FIRST_MS;
      let everOpened = false;
      for (;;) {
        const parser = new SseParser();
        let opened = false;
        try {
          const { response } = await ok(
            ctx,
            ctx.api.GET("/v1/events", {
              params: { query: types === undefined ? {} : { types }, header: lastId === undefined ? {} : { "Last-Event-ID": lastId } },
              parseAs: "stream",
            }),
          );
          opened = true;
          everOpened = true;
          delay = RECONNECT_FIRST_MS;
          const body = response.body;
          if (!body) throw new CliError(`carpd at ${ctx.url} answered the event stream without a body`);
          const decoder = new TextDecoder();
          for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
            for (const m of parser.push(decoder.decode(chunk, { stream: true }))) {
              if (m.id !== undefined) lastId = m.id;
              const e = JSON.parse(m.data) as Event;
              if (ctx.json) ctx.out(JSON.stringify(e));
              else if (e.type === "events.lost") ctx.io.stderr(`carpctl: ${describeEvent(e)}\n`);
              else ctx.out(`${e.time} ${e.type.padEnd(19)} ${describeEvent(e)}`);
              if (count !== undefined && ++printed >= count) return;
            }
          }
        } catch (e) {
          // A refusal (bad token, bad types) will not change by trying again, and a carpd never
          // reached is reported at once; once the stream was open, carpd restarting is waited for.
          if (e instanceof UsageError) throw e;
          if (!opened && (!everOpened || !/cannot reach carpd/.test((e as Error).message))) throw e;
          ctx.io.stderr(`carpctl: the event stream ${opened ? "ended" : "could not be opened"} (${(e as Error).message.split("\n")[0]}); reconnecting in ${delay / 1000} s\n`);
        }
        if (opened && parser.retryMs !== undefined) delay = Math.max(delay, parser.retryMs);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
      }
    },
  },
];

