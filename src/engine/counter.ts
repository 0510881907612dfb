/**
 * The advertisement counter (carp-protocol.md §5). Until a peer's advertisement has been
 * accepted every advertisement carries a fresh random 64-bit value; afterwards the node copies
 * the peer's counter and sends the stored value + 1, wrapping 2^64 − 1 → 0. Nobody checks the
 * counter for replays, so it needs to be random, not secret: the values come from a splitmix64
 * generator whose seed the runtime injects (from crypto.randomBytes), which keeps step() pure.
 */

const MASK64 = (1n << 64n) - 1n;

/** One splitmix64 step: the next generator state and a random 64-bit value. */
export function splitmix64(state: bigint): { state: bigint; value: bigint } {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return { state: next, value: z ^ (z >> 31n) };
}

/** The counter for the next advertisement, and the counter/generator state after sending it. */
export function nextCounter(counter: bigint | null, rng: bigint): { value: bigint; counter: bigint | null; rng: bigint } {
  if (counter === null) {
    const r = splitmix64(rng);
    return { value: r.value, counter: null, rng: r.state };
  }
  const value = (counter + 1n) & MASK64;
  return { value, counter: value, rng };
}

/** Normalises any bigint seed to a 64-bit generator state. */
export function seedState(seed: bigint): bigint {
  return seed & MASK64;
}
