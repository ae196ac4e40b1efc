// Loads XGrammar (@mlc-ai/web-xgrammar: the C++ library compiled to WebAssembly, the wasm inlined
// as a data: URL, so nothing is fetched: it works the same in a page, a Worker and a Service
// Worker) and turns its failures into errors with its own message.
//
// Two facts about the npm build shape this file:
// - lib/index.js is a UMD script in a "type": "module" package. Node's ESM loader runs it without
//   `require` and it throws, so in Node the script is evaluated as CommonJS here. A bundler
//   (Vite) wraps it; without CommonJS globals the UMD sets `globalThis.xgrammar` instead.
// - A grammar it cannot parse makes the C++ side abort(): the JS call throws "Aborted()" after
//   printing the reason on stderr, and the wasm stack is never unwound, so an instance is
//   corrupted after a few dozen aborts. The reason is captured from the instance's stderr, and an
//   instance that aborted is thrown away: untrusted grammars are checked on a separate instance
//   (XGrammar.fresh), made anew after each abort. Node evaluates the script again for each; a
//   browser evaluates the script's text, fetched on the first abort from the URL given to
//   locateXGrammarScript (the builds ship the script as xgrammar.js; the workers locate it).
import type * as XGrammarModule from '@mlc-ai/web-xgrammar';

export type XGrammarLib = typeof XGrammarModule;

/** XGrammar rejected a grammar or schema; the message is its own. */
export class GrammarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GrammarError';
  }
}

/** One XGrammar wasm instance. */
export class XGrammar {
  private captured: string[] | null = null;
  /** True once a call aborted: the instance should not be trusted with anything else. */
  aborted = false;

  private constructor(readonly lib: XGrammarLib) {}

  /**
   * Runs `call` against the instance; an abort becomes a GrammarError carrying XGrammar's
   * message (its "[FATAL] file:line: ..." prefix removed).
   */
  async guard<T>(call: (lib: XGrammarLib) => Promise<T> | T): Promise<T> {
    this.captured = [];
    try {
      return await call(this.lib);
    } catch (e) {
      const lines = this.captured;
      // A C++ exception arrives as a bare number (a pointer); treat it like an abort.
      if (typeof e === 'number') {
        this.aborted = true;
        throw new GrammarError(lines.join('; ') || 'XGrammar rejected it (an exception in its C++ code)');
      }
      if (!(e instanceof Error) || !/Aborted\(/.test(e.message)) throw e;
      this.aborted = true;
      const fatal = lines.map((l) => l.replace(/^\[FATAL\][^:]*:\d+:\s*/, '')).filter((l) => l && !/^Aborted\(/.test(l));
      throw new GrammarError(fatal.join('; ') || e.message);
    } finally {
      this.captured = null;
    }
  }

  /** Loads an instance: in Node a fresh one every call; in a browser the one bundled copy. */
  static load(): Promise<XGrammar> {
    if (isNode()) return XGrammar.start(evaluateInNode());
    browserInstance ??= XGrammar.start(importBundled());
    return browserInstance;
  }

  /**
   * An instance of its own, apart from the one `load` gives in a browser: for checking grammars
   * that may abort it. A browser evaluates XGrammar's script, fetched once from where
   * locateXGrammarScript says; where it cannot (not located, the fetch failed, or a
   * Content-Security-Policy without 'unsafe-eval'), it is the bundled copy after all.
   */
  static async fresh(): Promise<XGrammar> {
    if (isNode()) return XGrammar.start(evaluateInNode());
    const source = evalBlocked ? null : await scriptSource();
    if (source !== null) {
      try {
        return await XGrammar.start(Promise.resolve(evaluateSource(source)));
      } catch (e) {
        if (!(e instanceof EvalError)) throw e;
        evalBlocked = true;
        console.warn(`wgserve: XGrammar's script cannot be evaluated here (${e.message}): ${SHARED_INSTANCE}`);
      }
    }
    return XGrammar.load();
  }

  private static async start(loading: Promise<XGrammarLib>): Promise<XGrammar> {
    const routed: { instance: XGrammar | null } = { instance: null };
    // The wasm binds console.error when it first starts: route that binding through here.
    const original = console.error;
    const sink = (...args: unknown[]) => {
      const into = routed.instance?.captured;
      if (into) into.push(args.map(String).join(' '));
      else original.apply(console, args);
    };
    const lib = await loading;
    const instance = new XGrammar(lib);
    routed.instance = instance;
    console.error = sink;
    try {
      (await lib.Grammar.builtinJSONGrammar()).dispose(); // starts the wasm
    } finally {
      console.error = original;
    }
    return instance;
  }
}

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';
}

/**
 * Runs lib/index.js as CommonJS (a fresh wasm instance every time). Through node:vm, so the
 * script's own `import('module')` works wherever this runs (also inside a test runner's vm).
 */
async function evaluateInNode(): Promise<XGrammarLib> {
  const load = <T>(name: string) => import(/* @vite-ignore */ name) as Promise<T>;
  const { createRequire } = await load<typeof import('node:module')>('node:module');
  const { readFile } = await load<typeof import('node:fs/promises')>('node:fs/promises');
  const { dirname } = await load<typeof import('node:path')>('node:path');
  const vm = await load<typeof import('node:vm')>('node:vm');
  const file = createRequire(import.meta.url).resolve('@mlc-ai/web-xgrammar');
  const source = await readFile(file, 'utf8');
  const wrapped = `(function (exports, module, require, __filename, __dirname) {${source}\n})`;
  quietLoaderWarning();
  const run = vm.runInThisContext(wrapped, { filename: file, importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER }) as
    (exports: object, module: object, require: NodeJS.Require, filename: string, dirname: string) => void;
  const module = { exports: {} as XGrammarLib };
  run(module.exports, module, createRequire(file), file, dirname(file));
  return module.exports;
}

let quieted = false;

/** Node 20-22 call that loader option experimental, with a warning on stderr at its first use; only that one is dropped. */
function quietLoaderWarning(): void {
  if (quieted) return;
  quieted = true;
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: never[]) => {
    if (!String(warning).includes('USE_MAIN_CONTEXT_DEFAULT_LOADER')) emitWarning.call(process, warning, ...rest);
  }) as typeof process.emitWarning;
}

let browserInstance: Promise<XGrammar> | null = null;
let evalBlocked = false;

let provided: unknown = null;
let scriptUrl: string | null = null;
/** XGrammar's script, fetched once (or null: not located, or the fetch failed). */
let scriptText: Promise<string | null> | null = null;

/**
 * Hands the loader XGrammar's module where `import()` is not allowed: a Service Worker imports
 * `@mlc-ai/web-xgrammar` statically and passes the namespace here (workers/service-worker.ts).
 */
export function provideXGrammar(module: unknown): void {
  provided = module;
}

/**
 * Where a browser finds XGrammar's script (a copy of `@mlc-ai/web-xgrammar/lib/index.js`; the
 * builds ship it as `xgrammar.js`), from which instances that replace aborted ones are made. It
 * is fetched when the first one is needed, not before.
 */
export function locateXGrammarScript(url: string | URL): void {
  const href = String(url);
  if (href === scriptUrl) return;
  scriptUrl = href;
  scriptText = null;
}

/** The text of XGrammar's script, fetched from where it was located; null (with a warning) if it cannot be had. */
function scriptSource(): Promise<string | null> {
  scriptText ??= fetchScript(scriptUrl);
  return scriptText;
}

/** What a browser does without fresh instances. */
const SHARED_INSTANCE = 'grammars are checked on the instance that serves, which a few dozen rejected grammars leave unusable';

async function fetchScript(url: string | null): Promise<string | null> {
  if (url === null) {
    console.warn(`wgserve: XGrammar's script was not located (locateXGrammarScript): ${SHARED_INSTANCE}`);
    return null;
  }
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.text();
  } catch (e) {
    console.warn(`wgserve: could not fetch XGrammar's script from ${url} (${(e as Error).message}): ${SHARED_INSTANCE}`);
    return null;
  }
}

/** Runs XGrammar's UMD script as CommonJS: a new module, so a new wasm instance. */
function evaluateSource(source: string): XGrammarLib {
  const module = { exports: {} as XGrammarLib };
  const run = new Function('exports', 'module', 'define', source) as (exports: object, module: object, define: undefined) => void;
  run(module.exports, module, undefined);
  return module.exports;
}

/** The bundler's copy: its exports when it wrapped the UMD as CommonJS, else the global it set. */
async function importBundled(): Promise<XGrammarLib> {
  const m: unknown = provided ?? (await import('@mlc-ai/web-xgrammar'));
  const candidates = [m, (m as { default?: unknown }).default, (globalThis as { xgrammar?: unknown }).xgrammar];
  const lib = candidates.find((c): c is XGrammarLib => !!c && typeof (c as XGrammarLib).GrammarCompiler === 'function');
  if (!lib) throw new Error('@mlc-ai/web-xgrammar loaded, but exports no GrammarCompiler');
  return lib;
}
