import { readFileSync } from 'node:fs';
import { parseGgufHeader } from '../src/model/gguf.ts';
import { readModelConfig } from '../src/model/config.ts';
for (const f of process.argv.slice(2)) {
  const b = readFileSync(f); const h = parseGgufHeader(b, f, b.length); const c = readModelConfig(h, f);
  console.log(f.split('/').pop(), c.ropeFreqBase, c.ropeDim, c.headDim, c.ropeMode, c.contextLength, h.tensors.some(t => t.name === 'rope_freqs.weight'));
}
