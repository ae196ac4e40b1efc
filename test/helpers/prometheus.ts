// A strict reader of the Prometheus text exposition format (0.0.4) for tests: every line is a
// HELP or TYPE comment or a sample; a sample belongs to a family TYPEd before it (summary samples
// end in _sum, _count or carry a quantile label); label values are quoted with \\, \" and \n
// escapes; a series appears once; counters and counts are finite and not negative.

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  type: string;
  help: string;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function parsePrometheus(text: string): Map<string, PromFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, PromFamily>();
  const series = new Set<string>();
  text.slice(0, -1).split('\n').forEach((line, i) => {
    const where = `line ${i + 1} (${JSON.stringify(line)})`;
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const [, kind, name, ...rest] = line.split(' ');
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const f = families.get(name) ?? { type: '', help: '', samples: [] };
      if (kind === 'TYPE') {
        if (f.type || f.samples.length) throw new Error(`${where}: TYPE repeated or after samples`);
        if (!['counter', 'gauge', 'summary', 'histogram', 'untyped'].includes(rest.join(' '))) throw new Error(`${where}: unknown type`);
        f.type = rest.join(' ');
      } else f.help = rest.join(' ');
      families.set(name, f);
      return;
    }
    if (line.startsWith('#') || line === '') throw new Error(`${where}: not a HELP, TYPE or sample line`);
    const sample = parseSample(line, where);
    const family = familyOf(sample, families);
    if (!family) throw new Error(`${where}: sample of no TYPEd family`);
    const key = sample.name + JSON.stringify(Object.entries(sample.labels).sort());
    if (series.has(key)) throw new Error(`${where}: series repeated`);
    series.add(key);
    if ((family.type === 'counter' || sample.name.endsWith('_count')) && !(sample.value >= 0 && Number.isFinite(sample.value))) {
      throw new Error(`${where}: a counter must be finite and >= 0`);
    }
    family.samples.push(sample);
  });
  return families;
}

function familyOf(s: PromSample, families: Map<string, PromFamily>): PromFamily | undefined {
  const exact = families.get(s.name);
  if (exact && exact.type !== 'summary' && exact.type !== 'histogram') return exact;
  if (exact && 'quantile' in s.labels) return exact;
  const m = /^(.*)_(sum|count|bucket)$/.exec(s.name);
  const f = m ? families.get(m[1]) : undefined;
  if (f && (f.type === 'summary' || f.type === 'histogram')) return f;
  return undefined;
}

function parseSample(line: string, where: string): PromSample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
  if (!m) throw new Error(`${where}: not "name{labels} value"`);
  const labels: Record<string, string> = {};
  if (m[2]) {
    let rest = m[2].slice(1, -1);
    while (rest.length) {
      const lm = /^([^=]+)="((?:[^"\\]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!lm || !LABEL.test(lm[1])) throw new Error(`${where}: bad label syntax at ${JSON.stringify(rest)}`);
      if (lm[1] in labels) throw new Error(`${where}: label ${lm[1]} repeated`);
      labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(lm[0].length);
    }
  }
  const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : m[3] === 'NaN' ? NaN : Number(m[3]);
  if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`${where}: bad value`);
  return { name: m[1], labels, value };
}

/** The value of the one sample of `name` whose labels include `labels`, or undefined. */
export function promValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

/** Sum of the samples of `name` (all label sets). */
export function promSum(families: Map<string, PromFamily>, name: string): number {
  let sum = 0;
  for (const f of families.values()) for (const s of f.samples) if (s.name === name) sum += s.value;
  return sum;
}
