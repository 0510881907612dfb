/**
 * JSON Patch (RFC 6902: add, remove, replace) over JSON documents: the journal stores each
 * revision as the operations that turn the revision before it into it.
 *
 * `diff` walks two documents that share their unchanged parts (a draft is a copy of the
 * revision with only the edited objects new): identical objects are skipped at once, so its
 * cost follows the change. Arrays are compared by their common ends, then by matching the
 * elements in between by content; what stays unmatched is removed, added or, where an old
 * and a new element take the same place, patched field by field. The result is short for the
 * edits carpd makes (one element added, removed or changed), and correct for any pair.
 *
 * As in JSON, a property holding `undefined` is absent.
 */

export type PatchOp = { op: 'add'; path: string; value: unknown } | { op: 'remove'; path: string } | { op: 'replace'; path: string; value: unknown };

export class PatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatchError';
  }
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 6901: "~" is "~0", "/" is "~1". */
export function pointerToken(key: string | number): string {
  const k = String(key);
  return k.includes('~') || k.includes('/') ? k.replace(/~/g, '~0').replace(/\//g, '~1') : k;
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`"${path}" is not a JSON pointer`);
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Deep equality of JSON values. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    let n = 0;
    for (const k of Object.keys(a)) {
      if (a[k] === undefined) continue;
      if (!jsonEqual(a[k], b[k])) return false;
      n++;
    }
    for (const k of Object.keys(b)) if (b[k] !== undefined) n--;
    return n === 0;
  }
  return false;
}

/** JSON text with object keys sorted: equal for equal content, whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (isObject(v)) {
    const keys = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The operations that turn `a` into `b`, appended to `out`. */
export function diff(a: unknown, b: unknown, path = '', out: PatchOp[] = []): PatchOp[] {
  if (a === b) return out;
  if (Array.isArray(a) && Array.isArray(b)) {
    diffList(a, b, path, out);
    return out;
  }
  if (isObject(a) && isObject(b)) {
    for (const k of Object.keys(a)) {
      if (a[k] === undefined) continue;
      const p = `${path}/${pointerToken(k)}`;
      if (b[k] === undefined) out.push({ op: 'remove', path: p });
      else diff(a[k], b[k], p, out);
    }
    for (const k of Object.keys(b)) {
      if (b[k] !== undefined && a[k] === undefined) out.push({ op: 'add', path: `${path}/${pointerToken(k)}`, value: b[k] });
    }
    return out;
  }
  if (!jsonEqual(a, b)) out.push({ op: 'replace', path, value: b });
  return out;
}

export interface ListDiff<T> {
  /** Elements of the old list without a match in the new one, in order. */
  removed: T[];
  /** Elements of the new list without a match in the old one, in order. */
  added: T[];
  /** [old index, new index] of the elements the middle matched by content (not by identity). */
  matchedByContent: [number, number][];
}

/**
 * The operations that turn list `a` into list `b`. Common ends are found by identity; the
 * elements between are matched by content (canonical JSON), in order, greedily.
 */
export function diffList<T>(a: readonly T[], b: readonly T[], path: string, out: PatchOp[]): ListDiff<T> {
  const result: ListDiff<T> = { removed: [], added: [], matchedByContent: [] };
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const aEnd = a.length - suf;
  const bEnd = b.length - suf;
  if (pre === aEnd && pre === bEnd) return result;

  const aMatch = new Map<number, number>();
  const bMatch = new Map<number, number>();
  const match = (i: number, j: number) => {
    aMatch.set(i, j);
    bMatch.set(j, i);
    if (a[i] !== b[j]) result.matchedByContent.push([i, j]);
  };
  if (aEnd - pre === bEnd - pre && a.slice(pre, aEnd).every((x, k) => jsonEqual(x, b[pre + k]))) {
    // The same content in new objects (a copied list): all matched, no operation.
    for (let k = pre; k < aEnd; k++) match(k, k);
    return result;
  }
  // Match the middles by content, in increasing order on both sides.
  const aKeys = new Map<string, number[]>();
  for (let i = pre; i < aEnd && bEnd > pre; i++) {
    const k = canonicalJson(a[i]);
    const list = aKeys.get(k);
    if (list) list.push(i);
    else aKeys.set(k, [i]);
  }
  let last = pre - 1;
  for (let j = pre; j < bEnd && aKeys.size > 0; j++) {
    const list = aKeys.get(canonicalJson(b[j]));
    if (!list) continue;
    const i = list.find((x) => x > last);
    if (i === undefined) continue;
    match(i, j);
    last = i;
  }

  let i = pre;
  let j = pre;
  let pos = pre;
  while (i < aEnd || j < bEnd) {
    if (i < aEnd && j < bEnd && aMatch.get(i) === j) {
      i++, j++, pos++;
      continue;
    }
    const aFree = i < aEnd && !aMatch.has(i);
    const bFree = j < bEnd && !bMatch.has(j);
    if (aFree && bFree) {
      // One element takes another's place: patch it where both are objects, else replace it.
      if (isObject(a[i]) && isObject(b[j])) diff(a[i], b[j], `${path}/${pos}`, out);
      else out.push({ op: 'replace', path: `${path}/${pos}`, value: b[j] });
      result.removed.push(a[i]);
      result.added.push(b[j]);
      i++, j++, pos++;
    } else if (aFree) {
      out.push({ op: 'remove', path: `${path}/${pos}` });
      result.removed.push(a[i]);
      i++;
    } else {
      // a[i] (if any) is matched further on: b[j] comes first.
      out.push({ op: 'add', path: `${path}/${pos}`, value: b[j] });
      result.added.push(b[j]);
      j++, pos++;
    }
  }
  return result;
}

/**
 * Applies `ops` to `doc` in place (objects along the way are changed, not copied) and returns
 * the document, which is a new value only when an operation replaced the root.
 */
export function applyPatch(doc: unknown, ops: readonly PatchOp[]): unknown {
  let root = doc;
  for (const raw of ops as readonly unknown[]) {
    const o = raw as { op?: unknown; path?: unknown };
    if (typeof raw !== 'object' || raw === null || typeof o.path !== 'string') throw new PatchError('an operation without a path');
    if (o.op !== 'add' && o.op !== 'remove' && o.op !== 'replace') throw new PatchError(`unknown operation "${String(o.op)}" at ${o.path}`);
    const op = raw as PatchOp;
    if (op.op !== 'remove' && !('value' in op)) throw new PatchError(`${o.op} at ${o.path} has no value`);
    const tokens = parsePointer(op.path);
    if (tokens.length === 0) {
      if (op.op === 'remove') throw new PatchError('cannot remove the whole document');
      root = op.value;
      continue;
    }
    let parent: unknown = root;
    for (const t of tokens.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[arrayIndex(parent, t, op.path, false)] : isObject(parent) && Object.hasOwn(parent, t) ? parent[t] : undefined;
      if (typeof parent !== 'object' || parent === null) throw new PatchError(`${op.path}: no such location`);
    }
    const last = tokens[tokens.length - 1];
    if (Array.isArray(parent)) {
      const i = arrayIndex(parent, last, op.path, op.op === 'add');
      if (op.op === 'add') parent.splice(i, 0, op.value);
      else if (op.op === 'remove') parent.splice(i, 1);
      else parent[i] = op.value;
    } else {
      const o = parent as Obj;
      if (op.op !== 'add' && !Object.hasOwn(o, last)) throw new PatchError(`${op.op} at ${op.path}: no such member`);
      if (op.op === 'remove') delete o[last];
      else o[last] = op.value;
    }
  }
  return root;
}

function arrayIndex(a: unknown[], token: string, path: string, adding: boolean): number {
  if (adding && token === '-') return a.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(`${path}: "${token}" is not an array index`);
  const i = Number(token);
  if (i > a.length || (!adding && i === a.length)) throw new PatchError(`${path}: index ${i} is outside an array of ${a.length}`);
  return i;
}
