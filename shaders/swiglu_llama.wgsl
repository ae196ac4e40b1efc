// SwiGLU of the llama.cpp set: silu as llama.cpp's ggml_v_silu (x86 AVX2 + FMA) computes it,
// x / (1 + ggml_v_expf(-x)) with the division correctly rounded (exact.wgsl). One thread per
// output element (elementwise_io.wgsl); entry points swiglu and swiglu_fused (swiglu_entries.wgsl).

#include "exact"

#include "elementwise_io"

fn silu(x: f32) -> f32 {
  let d = 1.0 + ggml_expf4(vec4<f32>(-x)).x;
  if (x == 0.0) { return 0.0; }
  return sign(x) * div_rn(abs(x), d);  // d = inf (x < -88.7) gives 0 there
}

#include "swiglu_entries"
