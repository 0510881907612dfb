/**
 * The current spec against the last released one (openapi/released/), with Optic's
 * breaking-change rules (@useoptic/openapi-utilities and @useoptic/standard-rulesets, used as
 * libraries: nothing here talks to the network), and carpd's versioning rules on top:
 *
 * - a spec that differs from the released one has a higher `info.version` and a section
 *   `## <version>` in docs/api-changelog.md;
 * - a breaking change (a removed path, operation, response field or enum value, a new required
 *   request field or parameter, a changed or narrowed type) needs a new major version, and its
 *   changelog section says what broke (a line with "Breaking") and how to migrate ("Migrat…").
 *
 * One addition is not counted as breaking: a new value of `ErrorCode` in an error answer. New
 * codes come with new features (minor versions); the spec tells clients to act on the HTTP
 * status of a code they do not know.
 */
import { readFileSync } from 'node:fs';
import { compareSpecs, type RuleResult } from '@useoptic/openapi-utilities';
import { RuleRunner } from '@useoptic/rulesets-base';
// The breaking-change ruleset alone: the package's index also loads its AI-assisted ruleset.
import { BreakingChangesRuleset } from '@useoptic/standard-rulesets/build/breaking-changes/index.js';
import { parse } from 'yaml';

type Json = Record<string, any>;

export interface Version {
  major: number;
  minor: number;
  patch: number;
  text: string;
}

export function parseVersion(text: string): Version {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(String(text));
  if (!m) throw new Error(`info.version "${text}" is not MAJOR.MINOR.PATCH`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text };
}

const compareVersions = (a: Version, b: Version) => a.major - b.major || a.minor - b.minor || a.patch - b.patch;

/** Every local $ref replaced by what it names (a $ref back into itself is left as it is). */
function dereference(doc: Json): Json {
  const resolve = (ref: string): unknown =>
    ref
      .slice(2)
      .split('/')
      .reduce<any>((node, part) => node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  const walk = (node: unknown, stack: string[]): unknown => {
    if (Array.isArray(node)) return node.map((x) => walk(x, stack));
    if (!node || typeof node !== 'object') return node;
    const obj = node as Json;
    if (typeof obj.$ref === 'string' && obj.$ref.startsWith('#/')) {
      if (stack.includes(obj.$ref)) return obj;
      const { $ref, ...siblings } = obj;
      return walk({ ...(resolve($ref) as Json), ...siblings }, [...stack, $ref]);
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, walk(v, stack)]));
  };
  return walk(doc, []) as Json;
}

/**
 * A schema with `properties` beside `oneOf` (carpd's Vip: common fields, then a branch per
 * protocol) as one `oneOf` whose branches carry the common fields too: the same set of
 * documents, in the form Optic's union rules compare branch by branch.
 */
function distributeUnions(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(distributeUnions);
  if (!node || typeof node !== 'object') return node;
  const obj = Object.fromEntries(Object.entries(node as Json).map(([k, v]) => [k, distributeUnions(v)])) as Json;
  if (!Array.isArray(obj.oneOf)) return obj;
  let out = obj;
  if (obj.properties || obj.required) {
    const { properties = {}, required = [], oneOf, ...rest } = obj;
    out = {
      ...rest,
      oneOf: (oneOf as Json[]).map((branch) => ({
        ...branch,
        type: branch.type ?? rest.type,
        properties: { ...properties, ...(branch.properties ?? {}) },
        required: [...new Set([...required, ...(branch.required ?? [])])],
      })),
    };
  }
  // A branch that is itself only a choice (`oneOf: [Vip, Plan]` with Vip one of two) joins its
  // branches to this choice.
  return { ...out, oneOf: (out.oneOf as Json[]).flatMap((b) => (Array.isArray(b.oneOf) && !b.properties ? (b.oneOf as Json[]) : [b])) };
}

export function loadSpec(file: string): Json {
  return parse(readFileSync(file, 'utf8')) as Json;
}

/** A new ErrorCode in an error answer (see the header). */
function isNewErrorCode(r: RuleResult): boolean {
  return r.where.includes('application/problem+json') && /^cannot add enum options? '/.test(r.error ?? '') && / from 'code' property/.test(r.error ?? '');
}

const PROBLEM = '#/components/schemas/Problem';
/** Where the error answers' body is compared, once for all of them. */
export const ERROR_ANSWERS = '/(every error answer)';

/**
 * The spec with the body of its error answers compared once: every answer whose body is the
 * Problem schema gets a placeholder, and one more operation answers the Problem itself. Each
 * error answer is still compared (a status removed is found), its body once: the rules build
 * facts for every field of every answer, and Problem's, with its long `code` enum, in each of
 * some 200 answers, would make the comparison take ten times as long.
 */
function problemOnce(doc: Json): Json {
  const copy = structuredClone(doc);
  const placeholder = (responses: Json | undefined) => {
    for (const response of Object.values(responses ?? {})) {
      const media = (response as Json).content?.['application/problem+json'];
      if (media?.schema?.$ref === PROBLEM) media.schema = { type: 'object', description: `Problem, compared at ${ERROR_ANSWERS}` };
    }
  };
  for (const item of Object.values((copy.paths ?? {}) as Json)) for (const op of Object.values(item as Json)) placeholder((op as Json)?.responses);
  placeholder(copy.components?.responses);
  if (copy.components?.schemas?.Problem) {
    copy.paths[ERROR_ANSWERS] = { get: { responses: { '400': { description: 'Every error answer', content: { 'application/problem+json': { schema: { $ref: PROBLEM } } } } } } };
  }
  return copy;
}

/** The breaking changes from `released` to `current`, as Optic names them. */
export async function breakingChanges(released: Json, current: Json, accepted: AcceptedFinding[] = []): Promise<RuleResult[]> {
  const input = (doc: Json, name: string) => ({
    jsonLike: distributeUnions(dereference(problemOnce(doc))) as any,
    sourcemap: { rootFilePath: name, files: [], refMappings: {} },
    isEmptySpec: false,
  });
  const { results } = await compareSpecs(input(released, 'released'), input(current, 'current'), new RuleRunner([new BreakingChangesRuleset()]), {});
  return results.filter((r) => !r.passed && !r.exempted && !isNewErrorCode(r) && !accepted.some((a) => a.where === r.where && a.rule === r.name));
}

/**
 * A finding of the rules against one released version, reviewed and found not to break a
 * client, with why (openapi/released/accepted-findings.yaml). It applies to that release only.
 */
export interface AcceptedFinding {
  where: string;
  rule: string;
  why: string;
}

export function acceptedFindings(file: string, releasedVersion: string): AcceptedFinding[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const all = (parse(text) ?? {}) as Record<string, AcceptedFinding[]>;
  const list = all[releasedVersion] ?? [];
  for (const a of list) if (!a.where || !a.rule || !a.why) throw new Error(`${file}: every accepted finding names where, rule and why`);
  return list;
}

/** The section `## <version>` of the changelog, without its heading; undefined when there is none. */
export function changelogSection(changelog: string, version: string): string | undefined {
  const lines = changelog.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^## ${version.replace(/\./g, '\\.')}(\\s|$)`).test(l));
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** The problems that make the current spec an unannounced change of the released one; none is a pass. */
export async function compatibilityProblems(opts: { released: Json; current: Json; changelog: string; changelogPath: string; accepted?: AcceptedFinding[] }): Promise<{ problems: string[]; breaking: RuleResult[] }> {
  const problems: string[] = [];
  const was = parseVersion(opts.released.info?.version);
  const now = parseVersion(opts.current.info?.version);
  const breaking = await breakingChanges(opts.released, opts.current, opts.accepted);
  const same = JSON.stringify(opts.released) === JSON.stringify(opts.current);
  if (compareVersions(now, was) < 0) problems.push(`info.version ${now.text} is lower than the released ${was.text}`);
  if (!same && compareVersions(now, was) === 0) {
    problems.push(`the spec differs from the released ${was.text} but info.version was not raised: a new minor version for additions, a new major one for breaking changes`);
  }
  const section = changelogSection(opts.changelog, now.text);
  if (!same && section === undefined) problems.push(`${opts.changelogPath} has no section "## ${now.text}" saying what changed since ${was.text}`);
  if (breaking.length > 0) {
    const list = breaking.map((r) => `  - ${r.where}: ${r.error ?? r.name}`).join('\n');
    if (now.major <= was.major) {
      problems.push(`breaking change${breaking.length > 1 ? 's' : ''} against the released ${was.text}, without a new major version:\n${list}`);
    } else if (section === undefined || !/breaking/i.test(section) || !/migrat/i.test(section)) {
      problems.push(`breaking change${breaking.length > 1 ? 's' : ''} in ${now.text}: its section in ${opts.changelogPath} must say what broke ("Breaking") and how to migrate ("Migration"):\n${list}`);
    }
  }
  return { problems, breaking };
}
