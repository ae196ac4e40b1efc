// WGSL sources from shaders/*.wgsl, composed with two small directives:
//   #include "name"   inlines shaders/name.wgsl (once per composed module)
//   {{KEY}}           replaced by defines[KEY] (type names, sizes)
import { SHADER_SOURCES } from './shaders.generated.js';

export type ShaderDefines = Record<string, string | number>;

export function shaderSource(name: string): string {
  const src = SHADER_SOURCES[name];
  if (src === undefined) throw new Error(`unknown shader ${name} (no shaders/${name}.wgsl)`);
  return src;
}

export function composeShader(name: string, defines: ShaderDefines = {}): string {
  const included = new Set<string>();
  const expand = (file: string): string => {
    included.add(file);
    return shaderSource(file).replace(/^[ \t]*#include\s+"([\w-]+)"[ \t]*$/gm, (_, inc: string) =>
      included.has(inc) ? '' : expand(inc),
    );
  };
  return expand(name).replace(/\{\{(\w+)\}\}/g, (m, key: string) => {
    const value = defines[key];
    if (value === undefined) throw new Error(`shader ${name} needs define ${key}`);
    return String(value);
  });
}
