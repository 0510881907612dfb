/**
 * The sync transport: one HTTPS endpoint, `POST /sync/v1/message`, on a listener of its own
 * (never the management API's), authenticated both ways by pinned certificate fingerprints.
 *
 * It is three modules, one per responsibility, and this one is its public face: every name of
 * the three is exported from here:
 *   server.ts            the listener: TLS 1.3 with client certificates, the pin check, the
 *                        signed-envelope check, per-peer connection limits and refusals
 *   client.ts            the client: one kept-alive pinned connection, the retry of a request
 *                        that a reused connection dropped unanswered, the idle close
 *   transport-shared.ts  the path, the body limit and SyncTransportError, used by both
 * Import from here; server.ts and client.ts import only transport-shared.ts, not this module.
 */
export type { RejectReason, SyncMessage } from './envelope.js';
export { MAX_BODY_BYTES, SYNC_PATH, SyncTransportError } from './transport-shared.js';
export type { SyncTransportErrorKind } from './transport-shared.js';
export { LISTENER_IDLE_MS, MAX_CONNECTIONS_PER_PEER, SyncServer } from './server.js';
export type { MessageKinds, SyncServerOptions, VerifiedMessage } from './server.js';
export { CLIENT_IDLE_MS, SyncClient } from './client.js';
export type { RawAnswer, SyncPeer } from './client.js';
