// composeShader: #include (once per module, by define), {{KEY}} defines, enable directives hoisted.
import { describe, expect, it } from 'vitest';
import { composeShader } from '../../src/gpu/index.js';

const GEMV = { WTYPE: 'f16', ROWS: 4, SPLIT: 8, GEMV_THREADS: 64, GEMV_COLS: 2, LOG_SPLIT: 3 };

describe('composeShader', () => {
  it('picks an included file by define, and moves its enable directive to the top of the module', () => {
    const sub = composeShader('matmul', { ...GEMV, GEMV_TREE: 'subgroups' });
    expect(sub.startsWith('enable subgroups;\n')).toBe(true);
    expect(sub.match(/^\s*enable /gm)).toHaveLength(1);
    expect(sub).toContain('subgroupShuffleXor');
    const shared = composeShader('matmul', { ...GEMV, GEMV_TREE: 'shared' });
    expect(shared).not.toMatch(/^\s*enable |subgroupShuffle/m);
    expect(shared.match(/fn gemv\(/g)).toHaveLength(1);
  });

  it('includes a file once however many files include it, and names a missing define or file', () => {
    const q8 = composeShader('matmul_q8', { ...GEMV, GEMV_TREE: 'shared', REPACK: 'false', ONE_SUM: 'true', FUSED_FMA: 'true' });
    expect(q8.match(/fn merge_lane\(/g)).toHaveLength(1);
    expect(() => composeShader('matmul', GEMV)).toThrow(/needs define GEMV_TREE/);
    expect(() => composeShader('matmul', { ...GEMV, GEMV_TREE: 'nope' })).toThrow(/no shaders\/gemv_tree_nope.wgsl/);
  });
});
