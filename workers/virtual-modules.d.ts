// Modules that tools/vite-xgrammar-script.ts provides to the workers' builds.
declare module 'virtual:wgserve/xgrammar-script' {
  /** The absolute URL of XGrammar's script shipped beside the build (xgrammar.js); null where it cannot be resolved. */
  export default function xgrammarScriptUrl(): string | null;
}
