/**
 * The 64-bit advertisement counter (carp-protocol.md §5), as FreeBSD's carp_prepare_ad and
 * carp_input_c keep it.
 *
 * ```
 *  CARP header bytes 8..15 (8 bytes), big-endian, high 32-bit word first
 *  +-------------------------------+-------------------------------+
 *  | carp_counter[0]  (high word)  | carp_counter[1]  (low word)   |
 *  +-------------------------------+-------------------------------+
 * ```
 *
 * - Until a valid advertisement from a peer has been accepted, every advertisement sent carries
 *   a fresh random value (two random 32-bit words). The randomness is the caller's: pass a
 *   function, so that the engine stays pure.
 * - After accepting a peer's advertisement the node stores that packet's counter and sends the
 *   stored value + 1 (wrapping 2^64 - 1 -> 0, as ucarp does).
 * - There is no replay check (§5, trap 7): counters are not monotonic on the wire and two nodes
 *   can emit the same value, so a receiver must never reject an "old" or duplicate counter.
 *   `isOwnEcho` is the one optional check the reference suggests: our own last value coming back.
 */
import { bufferView, checkRoom } from './ip.js';

export const COUNTER_MAX = (1n << 64n) - 1n;

export interface AdvertCounterState {
  /** sc_counter: the value last sent, or the peer's value last accepted. */
  readonly value: bigint;
  /** !sc_init_counter: a valid peer advertisement has been accepted since the vhid started. */
  readonly peerHeard: boolean;
  /** The counter of our last advertisement, if any. */
  readonly lastSent?: bigint;
}

/** A vhid that has not heard a peer yet. */
export const INITIAL_ADVERT_COUNTER: AdvertCounterState = Object.freeze({ value: 0n, peerHeard: false });

function checkCounter(counter: bigint, what: string): void {
  if (typeof counter !== 'bigint' || counter < 0n || counter > COUNTER_MAX) throw new RangeError(`${what} must be a 64-bit unsigned bigint`);
}

/** The counter FreeBSD builds from two arc4random() words: (high << 32) + low. */
export function counterFromWords(high: number, low: number): bigint {
  if (!Number.isInteger(high) || !Number.isInteger(low) || high < 0 || low < 0 || high > 0xffffffff || low > 0xffffffff) {
    throw new RangeError('counter words must be 32-bit unsigned integers');
  }
  return (BigInt(high) << 32n) | BigInt(low);
}

/**
 * The counter for the next advertisement and the state after sending it. `random` is called
 * only while no peer has been heard and must return a value in 0..2^64-1.
 */
export function nextAdvertCounter(state: AdvertCounterState, random: () => bigint): { counter: bigint; state: AdvertCounterState } {
  let counter: bigint;
  if (state.peerHeard) {
    counter = state.value === COUNTER_MAX ? 0n : state.value + 1n;
  } else {
    counter = random();
    checkCounter(counter, 'random counter');
  }
  return { counter, state: { value: counter, peerHeard: state.peerHeard, lastSent: counter } };
}

/** The state after accepting a valid (authenticated) peer advertisement carrying `counter`. Never rejects. */
export function acceptPeerCounter(state: AdvertCounterState, counter: bigint): AdvertCounterState {
  checkCounter(counter, 'peer counter');
  return { value: counter, peerHeard: true, ...(state.lastSent === undefined ? {} : { lastSent: state.lastSent }) };
}

/** Whether `counter` is the one we sent last: a looped-back copy of our own advertisement (optional check, §5). */
export function isOwnEcho(state: AdvertCounterState, counter: bigint): boolean {
  return state.lastSent !== undefined && state.lastSent === counter;
}

/** Reads the big-endian 64-bit counter at `offset` (offset 8 of a CARP header). */
export function readCounter(bytes: Uint8Array, offset: number): bigint {
  checkRoom(bytes, offset, 8, 'counter');
  return bufferView(bytes).readBigUInt64BE(offset);
}

/** Writes the counter big-endian at `offset`. */
export function writeCounter(buf: Uint8Array, offset: number, counter: bigint): void {
  checkCounter(counter, 'counter');
  checkRoom(buf, offset, 8, 'counter');
  bufferView(buf).writeBigUInt64BE(counter, offset);
}
