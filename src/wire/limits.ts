/**
 * The ranges carpd holds values to below the API schema, and the checks against them, in one
 * place: config/validate.ts reports a value outside them as a problem of the document (with
 * its path and the value), the backends refuse it with EINVAL (kernel/backend.ts
 * checkedVhidParams for the modelled kernels, freebsd/vhids.ts and freebsd/settings.ts before
 * the real one). openapi/carpd.yaml states the same ranges for the API's own validation.
 *
 *  vhid             1..255      carp(4) CARP_MAXVHID (freebsd-kernel-abi.md §3.1); RFC 5798 §5.2.3 VRID
 *  advbase          1..255 s    carp(4) carpr_advbase; 0 means "keep" to the kernel (§3.2), never to carpd
 *  advskew          0..254      carp(4): 255 and more are EINVAL (§3.2)
 *  key              <= 20 bytes carp(4) CARP_KEY_LEN (§3.1); a password <= 19: ifconfig's strlcpy keeps 19 (T10)
 *  vrrpPriority     1..254      RFC 5798 §5.2.4; 255 is the address owner, which carpd never is
 *  vrrpInterval     1..4095 cs  RFC 5798 §5.2.7: a 12-bit field of centiseconds
 *  pfsync maxupd    0..255      pfsync(4) pfsyncr_maxupdates / "maxupdates" is a u_char (§5.2)
 *  pfsync version   1301, 1400, 1500 (§5.3)
 *
 * Checking below the schema matters because the kernel does not check first: SIOCSVH and
 * netlink SET create a vhid before they validate advbase/advskew (§12.6).
 */

/** A closed range of integers. */
export interface IntRange {
  readonly min: number;
  readonly max: number;
}

export const VHID: IntRange = { min: 1, max: 255 };
export const ADVBASE_SEC: IntRange = { min: 1, max: 255 };
export const ADVSKEW: IntRange = { min: 0, max: 254 };
export const VRRP_PRIORITY: IntRange = { min: 1, max: 254 };
export const VRRP_INTERVAL_CS: IntRange = { min: 1, max: 4095 };
export const PFSYNC_MAXUPD: IntRange = { min: 0, max: 255 };
/** carp(4) CARP_KEY_LEN: the raw key the kernel keeps. */
export const CARP_KEY_MAX_BYTES = 20;
/** What carpd accepts as a password: ifconfig copies it with strlcpy into 20 bytes (T10). */
export const PASSWORD_MAX_BYTES = CARP_KEY_MAX_BYTES - 1;
export const PFSYNC_VERSIONS = [1301, 1400, 1500] as const;
export type PfsyncVersion = (typeof PFSYNC_VERSIONS)[number];

/** An integer within the range (anything else, NaN and 1.5 included, is not). */
export function inRange(n: unknown, r: IntRange): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= r.min && n <= r.max;
}

/** "1..255" */
export function rangeText(r: IntRange): string {
  return `${r.min}..${r.max}`;
}

export function isPfsyncVersion(v: unknown): v is PfsyncVersion {
  return (PFSYNC_VERSIONS as readonly unknown[]).includes(v);
}

/**
 * What is wrong with a vhid's CARP numbers, in the words of the kernel contract
 * (kernel/backend.ts: "advskew outside 0..254"), or undefined when nothing is.
 */
export function carpParamsFault(vhid: number, p: { advbaseSec: number; advskew: number; key?: string }): string | undefined {
  if (!inRange(vhid, VHID)) return `vhid outside ${rangeText(VHID)}`;
  if (!inRange(p.advbaseSec, ADVBASE_SEC)) return `advbase outside ${rangeText(ADVBASE_SEC)}`;
  if (!inRange(p.advskew, ADVSKEW)) return `advskew outside ${rangeText(ADVSKEW)}`;
  if (p.key !== undefined && Buffer.byteLength(p.key) > CARP_KEY_MAX_BYTES) return `key longer than ${CARP_KEY_MAX_BYTES} bytes`;
  return undefined;
}

/** What is wrong with a vrrpv3 vhid's priority and interval, in the kernel contract's words, or undefined. */
export function vrrpParamsFault(priority: number, intervalCs: number): string | undefined {
  if (!inRange(priority, VRRP_PRIORITY)) return `VRRP priority outside ${rangeText(VRRP_PRIORITY)} (255, the address owner, is not supported)`;
  if (!inRange(intervalCs, VRRP_INTERVAL_CS)) return `VRRP advertisement interval outside ${rangeText(VRRP_INTERVAL_CS)} centiseconds`;
  return undefined;
}

/** What is wrong with pfsync's maxupd and version, in the kernel contract's words, or undefined. */
export function pfsyncParamsFault(s: { maxupd: number; version: number }): string | undefined {
  if (!inRange(s.maxupd, PFSYNC_MAXUPD)) return `maxupd outside ${rangeText(PFSYNC_MAXUPD)}`;
  if (!isPfsyncVersion(s.version)) return `unknown pfsync version ${s.version}`;
  return undefined;
}
