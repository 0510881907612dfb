/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on any
 * line a Prometheus server would refuse or read differently (a bad name, an unescaped label
 * value, a sample before its family's TYPE or of another family, a series given twice, a value
 * that is not a float), so a test that parses a scrape checks its syntax too.
 */

export interface Sample {
  /** The sample's own name: the family's, or a histogram's `_bucket`, `_sum`, `_count`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  // Prometheus reads these as Go's ParseFloat does, in any case (prom-client writes `Nan`).
  if (/^nan$/i.test(text)) return NaN;
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: "${text}" is not a float`);
  return Number(text);
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}

/** The labels of `{...}` starting at text[0] === '{'; returns them and the rest of the line after `}`. */
function parseLabels(text: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  for (;;) {
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: a label without "="`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`${where}: "${name}" is not a label name`);
    if (name in labels) throw new Error(`${where}: label ${name} given twice`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label ${name}'s value is not quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`${where}: label ${name}'s value is not closed`);
      if (c === '"') break;
      if (c === '\\') {
        const n = text[j + 1];
        if (n === '\\' || n === '"') value += n;
        else if (n === 'n') value += '\n';
        else throw new Error(`${where}: label ${name}: bad escape \\${n}`);
        j += 2;
        continue;
      }
      if (c === '\n') throw new Error(`${where}: label ${name}: a raw newline`);
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`${where}: expected "," or "}" after label ${name}`);
  }
}

/** The families of a scrape, by name, in the order they appear. */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  if (text !== '' && !text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: "${name}" is not a metric name`);
      let f = families.get(name);
      if (!f) {
        if (seen.has(name)) throw new Error(`${where}: family ${name} given in two places`);
        f = { name, type: 'untyped', samples: [] };
        families.set(name, f);
        seen.add(name);
      } else if (current !== f) {
        throw new Error(`${where}: family ${name} given in two places`);
      }
      current = f;
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: a second HELP for ${name}`);
        f.help = unescapeHelp(rest);
      } else {
        if (!TYPES.has(rest)) throw new Error(`${where}: "${rest}" is not a metric type`);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE of ${name} after its samples`);
        f.type = rest as Family['type'];
      }
      return;
    }
    const nm = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!nm) throw new Error(`${where}: "${line}" does not start with a metric name`);
    const name = nm[1];
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, where));
    const parts = rest.trim().split(/ +/);
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new Error(`${where}: "${line}" is not NAME{LABELS} VALUE [TIMESTAMP]`);
    const value = parseValue(parts[0], where);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: "${parts[1]}" is not a timestamp`);
    const f = current;
    const own = f && (name === f.name || (f.type === 'histogram' && [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`].includes(name)) || (f.type === 'summary' && [`${f.name}_sum`, `${f.name}_count`].includes(name)));
    if (!f || !own) throw new Error(`${where}: sample ${name} outside its family (after ${f?.name ?? 'nothing'})`);
    if (f.type === 'histogram' && name === `${f.name}_bucket` && !('le' in labels)) throw new Error(`${where}: a bucket without le`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))}`;
    if (seen.has(key)) throw new Error(`${where}: series ${name}${JSON.stringify(labels)} given twice`);
    seen.add(key);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`);
    f.samples.push({ name, labels, value });
  });
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when there is none; throws when there are several. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const base = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
  const found = (base?.samples ?? []).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}
