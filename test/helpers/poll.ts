/**
 * Waiting for an outcome that real processes reach in their own time (an election, a takeover):
 * read until the predicate holds. The limit only stops a hung test; no test asserts how long it took.
 */
export const POLL_MS = 100;
export const POLL_LIMIT_MS = 30_000;

export async function pollUntil<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, limitMs = POLL_LIMIT_MS): Promise<T> {
  const deadline = Date.now() + limitMs;
  let last: T;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
