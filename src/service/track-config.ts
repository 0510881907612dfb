/**
 * Health tracks in the desired state: the edits the API makes (POST/PUT/DELETE /v1/tracks).
 * The rules are config/validate.ts's (checkTrack), checked on every change that touches the
 * list, so the API, PUT /v1/config, the bootstrap file and sync all meet them. The probes and
 * the hysteresis run in src/track/ (the runner) and service/tracks.ts (the pure state machine).
 */
import { CarpdError, fromProblems } from '../errors.js';
import { canonicalIp } from '../wire/address.js';
import { TRACK_DEFAULTS, defaultTrackTimeout, type DesiredState, type TrackConfig, type TrackKind } from '../config/model.js';
import { checkTrack, type Problem } from '../config/validate.js';

/**
 * A track as the API takes it (the name is in the path, or in POST's body): its kind and any of
 * the stored fields; `command` may come as a string (a shell command line), refused with the reason.
 */
export type TrackInput = Partial<Omit<TrackConfig, 'name' | 'kind' | 'command'>> & { kind: TrackKind; command?: string[] | string };

/** A track from an input, defaults filled in; not checked (checkTrack does that). */
export function trackOf(name: string, input: TrackInput): TrackConfig {
  const intervalMs = input.intervalMs ?? TRACK_DEFAULTS.intervalMs;
  const t: TrackConfig = {
    name,
    kind: input.kind,
    intervalMs,
    timeoutMs: input.timeoutMs ?? defaultTrackTimeout(intervalMs),
    rise: input.rise ?? TRACK_DEFAULTS.rise,
    fall: input.fall ?? TRACK_DEFAULTS.fall,
    weight: input.weight ?? TRACK_DEFAULTS.weight,
    nosync: input.nosync ?? TRACK_DEFAULTS.nosync,
  };
  if (input.interface !== undefined) t.interface = input.interface;
  if (input.target !== undefined) t.target = canonicalIp(input.target)?.address ?? input.target;
  if (input.port !== undefined) t.port = input.port;
  if (input.url !== undefined) t.url = input.url;
  if (input.statusMin !== undefined) t.statusMin = input.statusMin;
  if (input.statusMax !== undefined) t.statusMax = input.statusMax;
  if (input.command !== undefined) t.command = (Array.isArray(input.command) ? [...input.command] : input.command) as string[];
  return t;
}

/** A track from the API's input, checked: a bad one is refused with every problem. */
export function assembleTrack(name: string, input: TrackInput): TrackConfig {
  const t = trackOf(name, input);
  const out: Problem[] = [];
  checkTrack(t, out);
  if (out.length > 0) throw fromProblems(out);
  return t;
}

export const trackNotFound = (name: string) => new CarpdError('CARPD_ERR_TRACK_NOT_FOUND', `no track named "${name}"; list them with GET /v1/tracks`);

/** Adds a track to a draft; refuses a taken name. */
export function createTrack(draft: DesiredState, name: string, input: TrackInput): TrackConfig {
  if (draft.tracks.some((t) => t.name === name)) throw new CarpdError('CARPD_ERR_TRACK_EXISTS', `a track named "${name}" exists; replace it (PUT /v1/tracks/${name}) or pick another name`);
  const t = assembleTrack(name, input);
  draft.tracks.push(t);
  return t;
}

/** Replaces (or creates) a track on a draft. */
export function replaceTrack(draft: DesiredState, name: string, input: TrackInput): { track: TrackConfig; created: boolean } {
  const t = assembleTrack(name, input);
  const i = draft.tracks.findIndex((x) => x.name === name);
  if (i < 0) draft.tracks.push(t);
  else draft.tracks[i] = t;
  return { track: t, created: i < 0 };
}

export function deleteTrack(draft: DesiredState, name: string): void {
  if (!draft.tracks.some((t) => t.name === name)) throw trackNotFound(name);
  draft.tracks = draft.tracks.filter((t) => t.name !== name);
}
