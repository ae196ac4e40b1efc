// WGSL sources from shaders/*.wgsl, composed with two small directives:
//   #include "name"   inlines shaders/name.wgsl (once per composed module); the name may use
//                     {{KEY}} to pick a file by define (gemv_reduce.wgsl's tree)
//   {{KEY}}           replaced by defines[KEY] (type names, sizes)
// `enable` directives of included files are moved to the top of the module, where WGSL wants them.
import { SHADER_SOURCES } from './shaders.generated.js';

export type ShaderDefines = Record<string, string | number>;

export function shaderSource(name: string): string {
  const src = SHADER_SOURCES[name];
  if (src === undefined) throw new Error(`unknown shader ${name} (no shaders/${name}.wgsl)`);
  return src;
}

export function composeShader(name: string, defines: ShaderDefines = {}): string {
  const define = (key: string): string => {
    const value = defines[key];
    if (value === undefined) throw new Error(`shader ${name} needs define ${key}`);
    return String(value);
  };
  const substitute = (text: string) => text.replace(/\{\{(\w+)\}\}/g, (_, key: string) => define(key));
  const included = new Set<string>();
  const expand = (file: string): string => {
    included.add(file);
    return shaderSource(file).replace(/^[ \t]*#include\s+"([\w{}-]+)"[ \t]*$/gm, (_, directive: string) => {
      const inc = substitute(directive);
      return included.has(inc) ? '' : expand(inc);
    });
  };
  const enables = new Set<string>();
  const body = substitute(expand(name)).replace(/^[ \t]*enable\s+[\w,\s]+;[ \t]*$/gm, (line) => {
    enables.add(line.trim());
    return '';
  });
  return enables.size ? `${[...enables].join('\n')}\n${body}` : body;
}
