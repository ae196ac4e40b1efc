// Grammars of one model: XGrammar's view of the tokenizer (built once), compiled grammars cached
// by their spec, and a matcher (a Constraint) per constrained sequence.
import type { CompiledGrammar, GrammarCompiler, GrammarMatcher, TokenizerInfo } from '@mlc-ai/web-xgrammar';
import type { Tokenizer } from '../../model/index.js';
import { Utf8Guard } from './utf8-guard.js';
import { GrammarError, XGrammar, type XGrammarLib } from './xgrammar.js';

/** What a sequence's output must match. Schemas and tags are JSON text. */
export type GrammarSpec =
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: string }
  | { type: 'grammar'; grammar: string }
  | { type: 'structural_tag'; tag: string };

/** Compact JSON, one line, as Python's json.dumps: a prose model cannot wander into whitespace. */
const JSON_LAYOUT = { anyWhitespace: false, indent: -1, separators: [', ', ': '] as [string, string], strict: true };
const MAX_CACHED = 32;

/** CPU cost of masks, for benchmarks. */
export interface MaskStats {
  masks: number;
  milliseconds: number;
  /** Masks that allowed every token, so none was uploaded. */
  skipped: number;
}

/** Every bit of tokens 0..vocab-1 is set. */
export function allowsAll(mask: Uint32Array, vocab: number): boolean {
  const full = vocab >>> 5;
  for (let i = 0; i < full; i++) if (mask[i] !== 0xffffffff) return false;
  const rest = vocab & 31;
  if (rest === 0) return true;
  const tail = (1 << rest) - 1;
  return ((mask[full] ?? 0) & tail) === tail;
}

/** The grammar state of one sequence: the mask of its next token, and the tokens it took. */
export class Constraint {
  private disposed = false;

  constructor(private readonly matcher: GrammarMatcher, private readonly utf8: Utf8Guard, private readonly stats: MaskStats,
    private readonly vocabSize: number) {}

  /**
   * Bit t of word t >> 5 is set when token t may come next; null when every token may (a
   * structural tag before its trigger), so there is nothing to upload or apply.
   */
  async nextMask(): Promise<Uint32Array | null> {
    const start = performance.now();
    const words = await this.matcher.getNextTokenBitmask();
    const mask = new Uint32Array(words.buffer, words.byteOffset, words.length);
    this.utf8.restrict(mask);
    const free = allowsAll(mask, this.vocabSize);
    this.stats.milliseconds += performance.now() - start;
    this.stats.masks++;
    if (free) this.stats.skipped++;
    return free ? null : mask;
  }

  /** Advances by a sampled token; false if the grammar does not allow it (the state is unchanged). */
  accept(tokenId: number): boolean {
    if (!this.matcher.acceptToken(tokenId)) return false;
    this.utf8.accept(tokenId);
    return true;
  }

  /** The grammar is complete and a stop token was taken. */
  get terminated(): boolean {
    return this.matcher.isTerminated();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.matcher.dispose();
  }
}

/** A compiled grammar, shared by every sequence that uses the same spec. */
export class CompiledConstraint {
  constructor(private readonly lib: XGrammarLib, private readonly compiled: CompiledGrammar, private readonly grammars: Grammars) {}

  async matcher(): Promise<Constraint> {
    const matcher = await this.lib.GrammarMatcher.createGrammarMatcher(this.compiled);
    return new Constraint(matcher, this.grammars.utf8Guard(), this.grammars.stats, this.grammars.vocabSize);
  }

  /** Drops this handle (matchers made from it keep their own reference in XGrammar). */
  dispose(): void {
    this.compiled.dispose();
  }
}

export class Grammars {
  readonly stats: MaskStats = { masks: 0, milliseconds: 0, skipped: 0 };
  private readonly cache = new Map<string, Promise<CompiledConstraint>>();
  /** Checks untrusted specs first, so the instance that serves never aborts (see xgrammar.ts). */
  private probe: Promise<XGrammar> | null = null;
  /**
   * Until the first abort the probe is what XGrammar.load gives (in a browser, the instance that
   * serves: one abort does not break it); after that, instances of their own (XGrammar.fresh),
   * so a browser pays for a second wasm instance only once a grammar was rejected.
   */
  private probeAborted = false;

  private constructor(private readonly xg: XGrammar, private readonly compiler: GrammarCompiler, private readonly info: TokenizerInfo,
    private readonly tokenizer: Tokenizer, readonly vocabSize: number) {}

  /** XGrammar's tokenizer info for `tokenizer`, with logits of `vocabSize` tokens. */
  static async create(tokenizer: Tokenizer, vocabSize: number): Promise<Grammars> {
    const xg = await XGrammar.load();
    const vocab = tokenizer.grammarVocabulary();
    const info = await xg.lib.TokenizerInfo.createTokenizerInfo(vocab.pieces, vocab.vocabType, vocab.prependSpace, vocabSize, tokenizer.eotIds);
    const compiler = await xg.lib.GrammarCompiler.createGrammarCompiler(info);
    return new Grammars(xg, compiler, info, tokenizer, vocabSize);
  }

  /** Compiles (or finds) the grammar of `spec`; a GrammarError names what XGrammar rejected. */
  compile(spec: GrammarSpec): Promise<CompiledConstraint> {
    const key = JSON.stringify(spec);
    let entry = this.cache.get(key);
    if (entry) {
      this.cache.delete(key);
      this.cache.set(key, entry);
      return entry;
    }
    entry = this.check(spec).then((checked) => this.compileChecked(checked));
    entry.catch(() => this.cache.delete(key));
    this.cache.set(key, entry);
    if (this.cache.size > MAX_CACHED) this.evict(this.cache.keys().next().value as string);
    return entry;
  }

  dispose(): void {
    for (const key of [...this.cache.keys()]) this.evict(key);
    this.compiler.dispose();
    this.info.dispose();
  }

  private evict(key: string): void {
    const entry = this.cache.get(key);
    this.cache.delete(key);
    entry?.then((c) => c.dispose(), () => undefined);
  }

  /**
   * Parses the spec on the probe instance (one that aborts is replaced) and returns what to
   * compile: a structural tag's JSON-schema parts become compact grammars (see compactTag).
   */
  private async check(spec: GrammarSpec): Promise<GrammarSpec> {
    if (spec.type === 'json_object') return spec;
    const probe = await (this.probe ??= this.probeAborted ? XGrammar.fresh() : XGrammar.load());
    try {
      return await probe.guard(async (lib) => {
        const checked = spec.type === 'structural_tag' ? { ...spec, tag: JSON.stringify(await compactTag(lib, JSON.parse(spec.tag))) } : spec;
        (await parse(lib, checked)).dispose();
        return checked;
      });
    } catch (e) {
      if (probe.aborted) {
        this.probe = null;
        this.probeAborted = true;
      }
      throw e;
    }
  }

  private async compileChecked(spec: GrammarSpec): Promise<CompiledConstraint> {
    const c = this.compiler;
    const j = JSON_LAYOUT;
    const compiled = await this.xg.guard(() => {
      switch (spec.type) {
        case 'json_object': return c.compileJSONSchema('{"type": "object"}', j.anyWhitespace, j.indent, j.separators, j.strict);
        case 'json_schema': return c.compileJSONSchema(spec.schema, j.anyWhitespace, j.indent, j.separators, j.strict);
        case 'grammar': return c.compileGrammar(spec.grammar);
        case 'structural_tag': return c.compileStructuralTag(spec.tag);
      }
    });
    return new CompiledConstraint(this.xg.lib, compiled, this);
  }

  private utf8Tokens: ReturnType<typeof Utf8Guard.partialTokens> | null = null;

  /** A fresh UTF-8 check for one sequence (the table of partial tokens is built once). */
  utf8Guard(): Utf8Guard {
    this.utf8Tokens ??= Utf8Guard.partialTokens(this.tokenizer);
    return new Utf8Guard(this.utf8Tokens, (id) => this.tokenizer.tokenToBytes(id, false));
  }
}

/**
 * A structural tag with each {type: 'json_schema'} part replaced by the grammar of that schema in
 * the compact layout of JSON_LAYOUT: XGrammar's structural tags allow any whitespace in JSON,
 * and a small model then writes whitespace until max_tokens.
 */
async function compactTag(lib: XGrammarLib, node: unknown): Promise<unknown> {
  if (Array.isArray(node)) return Promise.all(node.map((n) => compactTag(lib, n)));
  if (typeof node !== 'object' || node === null) return node;
  const o = node as Record<string, unknown>;
  if (o.type === 'json_schema' && 'json_schema' in o) {
    const j = JSON_LAYOUT;
    const grammar = await lib.Grammar.fromJSONSchema(JSON.stringify(o.json_schema), j.anyWhitespace, j.indent, j.separators, j.strict);
    const ebnf = reparseable(grammar.toString());
    grammar.dispose();
    return { type: 'grammar', grammar: ebnf };
  }
  const entries = await Promise.all(Object.entries(o).map(async ([k, v]) => [k, await compactTag(lib, v)] as const));
  return Object.fromEntries(entries);
}

/**
 * XGrammar prints NUL as \0, which its own EBNF parser does not read as NUL (JSON strings would
 * then admit control characters): write it as \x00.
 */
function reparseable(ebnf: string): string {
  let out = '';
  for (let i = 0; i < ebnf.length; i++) {
    if (ebnf[i] !== '\\') {
      out += ebnf[i];
      continue;
    }
    const next = ebnf[i + 1];
    out += next === '0' && !/[0-9]/.test(ebnf[i + 2] ?? '') ? '\\x00' : `\\${next ?? ''}`;
    i++;
  }
  return out;
}

function parse(lib: XGrammarLib, spec: Exclude<GrammarSpec, { type: 'json_object' }>) {
  const j = JSON_LAYOUT;
  switch (spec.type) {
    case 'json_schema': return lib.Grammar.fromJSONSchema(spec.schema, j.anyWhitespace, j.indent, j.separators, j.strict);
    case 'grammar': return lib.Grammar.fromEBNF(spec.grammar);
    case 'structural_tag': return lib.Grammar.fromStructuralTag(spec.tag);
  }
}

export { GrammarError };
