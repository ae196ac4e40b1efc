// Writes every tensor llama.cpp computes for batches of tokens to a binary file, as f32, through
// the scheduler's eval callback. Usage: dump MODEL OUT TOKEN... [-- TOKEN...]...; batches are
// separated by '--' and decoded in order as one sequence, every row asking for logits.
// BACKEND_DIR: load ggml backends from there (node-llama-cpp's prebuilt CPU variants).
// File format, repeated: u32 0xffffffff starts a batch; otherwise u32 name length, name, u32 op
// name length, op name, i64 ne[4], then ne0*ne1*ne2*ne3 f32 values in logical order.
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static FILE *out;

static bool on_tensor(ggml_tensor *t, bool ask, void *) {
  if (ask) return true;
  size_t nbytes = ggml_nbytes(t);
  std::vector<uint8_t> raw(nbytes);
  ggml_backend_tensor_get(t, raw.data(), 0, nbytes);
  int64_t n = ggml_nelements(t);
  std::vector<float> f(n);
  size_t i = 0;
  bool ok = true;
  for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
    for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
      for (int64_t i1 = 0; i1 < t->ne[1]; i1++) {
        const uint8_t *row = raw.data() + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
        if (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_I32) {
          for (int64_t i0 = 0; i0 < t->ne[0]; i0++) {
            const uint8_t *p = row + i0 * t->nb[0];
            float v = t->type == GGML_TYPE_F32 ? *(const float *)p
                    : t->type == GGML_TYPE_F16 ? ggml_fp16_to_fp32(*(const ggml_fp16_t *)p)
                    : (float)*(const int32_t *)p;
            f[i++] = v;
          }
        } else {
          const auto *tr = ggml_get_type_traits(t->type);
          if (!tr->to_float) { ok = false; break; }
          tr->to_float(row, f.data() + i, t->ne[0]);
          i += t->ne[0];
        }
      }
  if (!ok) return true;
  uint32_t len = strlen(t->name);
  fwrite(&len, 4, 1, out);
  fwrite(t->name, 1, len, out);
  const char *op = ggml_op_desc(t);
  uint32_t oplen = strlen(op);
  fwrite(&oplen, 4, 1, out);
  fwrite(op, 1, oplen, out);
  fwrite(t->ne, 8, 4, out);
  fwrite(f.data(), 4, n, out);
  return true;
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: dump MODEL OUT TOKEN... [-- TOKEN...]\n"); return 1; }
  llama_backend_init();
  if (getenv("BACKEND_DIR")) ggml_backend_load_all_from_path(getenv("BACKEND_DIR"));
  out = fopen(argv[2], "wb");
  auto mp = llama_model_default_params();
  llama_model *model = llama_model_load_from_file(argv[1], mp);
  auto cp = llama_context_default_params();
  cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
  cp.cb_eval = on_tensor;
  const char *th = getenv("THREADS");
  if (th) { cp.n_threads = atoi(th); cp.n_threads_batch = cp.n_threads; }
  llama_context *ctx = llama_init_from_model(model, cp);
  // Batches separated by "--": each is decoded in order, all positions output logits.
  std::vector<std::vector<llama_token>> batches(1);
  for (int a = 3; a < argc; a++) {
    if (!strcmp(argv[a], "--")) { batches.emplace_back(); continue; }
    batches.back().push_back(atoi(argv[a]));
  }
  int pos = 0;
  for (auto &toks : batches) {
    llama_batch b = llama_batch_init(toks.size(), 0, 1);
    for (size_t i = 0; i < toks.size(); i++) {
      b.token[i] = toks[i]; b.pos[i] = pos++; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
    }
    b.n_tokens = toks.size();
    uint32_t sep = 0xffffffff; fwrite(&sep, 4, 1, out);
    if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
    llama_batch_free(b);
  }
  fclose(out);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
