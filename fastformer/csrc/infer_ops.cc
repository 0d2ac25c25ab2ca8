// Inference: the whole folded classifier (fastformer/inference/graph.py, FoldedClassifier) as one Paddle operator,
// so that Paddle Inference runs one kernel per forward instead of ~60 (docs/inference_speed.md, "Fused operator").
// Float32, CPU. Matrix products by oneDNN's sgemm (the libdnnl Paddle ships, which picks the CPU's instruction set
// and honours ONEDNN_MAX_CPU_ISA); the rest in loops, parallel over rows on std::threads for large batches (an
// OpenMP runtime here would be a second one beside the Intel OpenMP of Paddle's oneDNN).
// Inputs: input_ids, attention_mask [B, L] int64; Embed = {word [V, H], position [P, H], ln_w, ln_b};
// Layers = 12 tensors per layer {W_in = [Wq | Wk | Wx] [H, 3H], b_in [3H], wqa [H, N], wka [H, N], Wu [H, H],
// ln1_w, ln1_b, Wi [H, I], bi [I], Wo [I, H], ln2_w, ln2_b}; Head = {W1 [H, P], b1 [P], w2 [P, 1]} (attention pooling
// only) + {Wc [H, C], bc [C]}. Attributes: epsilon, pooler (0 attention, 1 mean, 2 first), mask_value.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <dlfcn.h>
#include <memory>
#include <thread>
#include <vector>

#include "paddle/extension.h"

extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// C[m, n] (row stride ldc) = A[m, k] (row stride lda) B[k, n] + beta C
static void Gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, float beta, float* c,
                 int64_t ldc) {
  dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, lda, b, n, beta, c, ldc);
}


// A float array that is not zero-filled on allocation (std::vector is: 50 MB of writes per batch of 64 x 128)
struct Buffer {
  explicit Buffer(int64_t n) : ptr(new float[n]) {}
  float* data() { return ptr.get(); }
  float& operator[](int64_t i) { return ptr[i]; }
  std::unique_ptr<float[]> ptr;
};

// The math-library threads Paddle set for this predictor (omp_get_max_threads of its Intel OpenMP), else every core
static int Threads() {
  using Fn = int (*)();
  static const Fn omp = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  const int n = omp ? omp() : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, n);
}

// body(begin, end) over [0, n) in contiguous chunks on up to `threads` threads, at least `grain` items each
template <typename Body>
static void ParallelFor(int64_t n, int64_t grain, int threads, const Body& body) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n / std::max<int64_t>(grain, 1)));
  if (parts == 1) return body(int64_t{0}, n);
  const int64_t chunk = (n + parts - 1) / parts;
  std::vector<std::thread> workers;
  for (int64_t t = 1; t < parts; ++t) workers.emplace_back(body, std::min(n, t * chunk), std::min(n, (t + 1) * chunk));
  body(int64_t{0}, std::min(n, chunk));
  for (auto& worker : workers) worker.join();
}

// the loops below, compiled for AVX-512, AVX2 and the baseline; the CPU picks one when the library loads
#define FF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

// row r of x [rows, h] <- (x - mean) / sqrt(var + eps) * w + b
FF_CLONES static void LayerNorm(float* x, int64_t rows, int64_t h, const float* w, const float* b, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * h;
    float mean = 0.f, var = 0.f;
#pragma omp simd reduction(+ : mean)
    for (int64_t c = 0; c < h; ++c) mean += row[c];
    mean /= h;
#pragma omp simd reduction(+ : var)
    for (int64_t c = 0; c < h; ++c) var += (row[c] - mean) * (row[c] - mean);
    const float rstd = 1.f / std::sqrt(var / h + eps);
#pragma omp simd
    for (int64_t c = 0; c < h; ++c) row[c] = (row[c] - mean) * rstd * w[c] + b[c];
  }
}

// exact (erf) GELU of x [n], in place
FF_CLONES static void Gelu(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.70710678118654752f));
}

// scores s [len, heads] (+ mask [len]) -> softmax over the sequence per head, in place
FF_CLONES static void SoftmaxOverSequence(float* s, const float* mask, int64_t len, int64_t heads) {
  std::vector<float> top(heads, -INFINITY), sum(heads, 0.f);
  for (int64_t l = 0; l < len; ++l)
    for (int64_t n = 0; n < heads; ++n) {
      s[l * heads + n] += mask[l];
      top[n] = std::max(top[n], s[l * heads + n]);
    }
  for (int64_t l = 0; l < len; ++l)
    for (int64_t n = 0; n < heads; ++n) {
      s[l * heads + n] = std::exp(s[l * heads + n] - top[n]);
      sum[n] += s[l * heads + n];
    }
  for (int64_t n = 0; n < heads; ++n) sum[n] = 1.f / sum[n];
  for (int64_t l = 0; l < len; ++l)
    for (int64_t n = 0; n < heads; ++n) s[l * heads + n] *= sum[n];
}

// out [h] = sum_l weight[l, head of c] * x[l, c] (x rows of stride ld): each head pools its own columns
FF_CLONES static void PoolHeads(const float* weight, const float* x, int64_t ld, int64_t len, int64_t heads, int64_t size,
                      float* out) {
  std::fill(out, out + heads * size, 0.f);
  for (int64_t l = 0; l < len; ++l)
    for (int64_t n = 0; n < heads; ++n) {
      const float w = weight[l * heads + n];
      const float* xs = x + l * ld + n * size;
      float* o = out + n * size;
#pragma omp simd
      for (int64_t d = 0; d < size; ++d) o[d] += w * xs[d];
    }
}

std::vector<paddle::Tensor> ClassifierForward(const paddle::Tensor& input_ids, const paddle::Tensor& attention_mask,
                                              const std::vector<paddle::Tensor>& embed,
                                              const std::vector<paddle::Tensor>& layers,
                                              const std::vector<paddle::Tensor>& head, float epsilon, int pooler,
                                              float mask_value) {
  PD_CHECK(input_ids.is_cpu(), "fastformer_classifier_infer: CPU only");
  PD_CHECK(layers.size() % 12 == 0, "fastformer_classifier_infer: 12 tensors per layer");
  const int64_t B = input_ids.shape()[0], L = input_ids.shape()[1];
  const float* word = embed[0].data<float>();
  const float* position = embed[1].data<float>();
  const int64_t V = embed[0].shape()[0], H = embed[0].shape()[1], T = B * L;
  PD_CHECK(L <= embed[1].shape()[0], "fastformer_classifier_infer: sequence longer than the position embeddings");
  const int64_t N = layers.empty() ? 1 : layers[2].shape()[1], D = H / N;
  const int64_t I = layers.empty() ? 0 : layers[7].shape()[1];
  const int64_t* ids = input_ids.data<int64_t>();
  const int64_t* keep = attention_mask.data<int64_t>();
  std::vector<float> mask(T);
  for (int64_t t = 0; t < T; ++t) mask[t] = keep[t] ? 0.f : mask_value;
  const int threads = Threads();
  // rows of H values per thread at least: starting a thread costs tens of microseconds, as much as ~1,000 rows of
  // these loops, so small batches run on the calling thread alone (the products use every thread regardless)
  const int64_t kRows = 2048;
  // x = LN(word[ids] + position[l])
  // work buffers, left uninitialised: every element is written before it is read
  Buffer x(T * H), qkx(T * 3 * H), s(T * N), p(T * H), h(T * std::max<int64_t>(I, 1));
  for (int64_t t = 0; t < T; ++t)
    PD_CHECK(ids[t] >= 0 && ids[t] < V, "fastformer_classifier_infer: token id ", ids[t], " outside the vocabulary");
  ParallelFor(T, kRows, threads, [&](int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; ++t) {
    const int64_t id = ids[t];
    const float* we = word + id * H;
    const float* pe = position + (t % L) * H;
    float* xt = x.data() + t * H;
#pragma omp simd
    for (int64_t c = 0; c < H; ++c) xt[c] = we[c] + pe[c];
  }
  LayerNorm(x.data() + begin * H, end - begin, H, embed[2].data<float>(), embed[3].data<float>(), epsilon);
  });
  for (size_t at = 0; at < layers.size(); at += 12) {
    const paddle::Tensor* w = &layers[at];
    // [q | k | x Wx + bx] = x [Wq | Wk | Wx] + [bq | bk | bx]
    const float* b_in = w[1].data<float>();
    for (int64_t t = 0; t < T; ++t) std::copy(b_in, b_in + 3 * H, qkx.data() + t * 3 * H);
    Gemm(T, 3 * H, H, x.data(), H, w[0].data<float>(), 1.f, qkx.data(), 3 * H);
    // alpha = softmax_l(q wqa + mask) per head
    Gemm(T, N, H, qkx.data(), 3 * H, w[2].data<float>(), 0.f, s.data(), N);
    ParallelFor(B, std::max<int64_t>(1, kRows / L), threads, [&](int64_t b0, int64_t b1) {
    std::vector<float> pooled(H);
    for (int64_t b = b0; b < b1; ++b) {
      const float* qb = qkx.data() + b * L * 3 * H;
      float* sb = s.data() + b * L * N;
      SoftmaxOverSequence(sb, mask.data() + b * L, L, N);
      PoolHeads(sb, qb, 3 * H, L, N, D, pooled.data());  // global query
      float* pb = p.data() + b * L * H;
      for (int64_t l = 0; l < L; ++l)  // p = k * global query
#pragma omp simd
        for (int64_t c = 0; c < H; ++c) pb[l * H + c] = qb[l * 3 * H + H + c] * pooled[c];
    }
    });
    // beta = softmax_l(p wka + mask); global key = sum_l beta p; u = global key * q (values = queries)
    Gemm(T, N, H, p.data(), H, w[3].data<float>(), 0.f, s.data(), N);
    ParallelFor(B, std::max<int64_t>(1, kRows / L), threads, [&](int64_t b0, int64_t b1) {
    std::vector<float> pooled(H);
    for (int64_t b = b0; b < b1; ++b) {
      const float* qb = qkx.data() + b * L * 3 * H;
      float* sb = s.data() + b * L * N;
      float* pb = p.data() + b * L * H;
      SoftmaxOverSequence(sb, mask.data() + b * L, L, N);
      PoolHeads(sb, pb, H, L, N, D, pooled.data());
      for (int64_t l = 0; l < L; ++l)
#pragma omp simd
        for (int64_t c = 0; c < H; ++c) pb[l * H + c] = pooled[c] * qb[l * 3 * H + c];
    }
    });
    // a = LN(u Wu + x Wx + bx), into x
    for (int64_t t = 0; t < T; ++t) std::copy(qkx.data() + t * 3 * H + 2 * H, qkx.data() + (t + 1) * 3 * H, x.data() + t * H);
    Gemm(T, H, H, p.data(), H, w[4].data<float>(), 1.f, x.data(), H);
    ParallelFor(T, kRows, threads, [&](int64_t begin, int64_t end) {
      LayerNorm(x.data() + begin * H, end - begin, H, w[5].data<float>(), w[6].data<float>(), epsilon);
    });
    // x = LN(gelu(a Wi + bi) Wo + a)
    const float* bi = w[8].data<float>();
    for (int64_t t = 0; t < T; ++t) std::copy(bi, bi + I, h.data() + t * I);
    Gemm(T, I, H, x.data(), H, w[7].data<float>(), 1.f, h.data(), I);
    float* hp = h.data();
    ParallelFor(T * I, kRows * H, threads, [&](int64_t begin, int64_t end) { Gelu(hp + begin, end - begin); });
    Gemm(T, H, I, hp, I, w[9].data<float>(), 1.f, x.data(), H);
    ParallelFor(T, kRows, threads, [&](int64_t begin, int64_t end) {
      LayerNorm(x.data() + begin * H, end - begin, H, w[10].data<float>(), w[11].data<float>(), epsilon);
    });
  }
  // pooled [B, H]: attention pooling (softmax_l(tanh(x W1 + b1) w2 + mask)), mean over real tokens, or the first
  std::vector<float> rows(B * H, 0.f);
  size_t at = 0;
  if (pooler == 0) {
    const int64_t P = head[0].shape()[1];
    Buffer z(T * P), score(T);
    const float* b1 = head[1].data<float>();
    for (int64_t t = 0; t < T; ++t) std::copy(b1, b1 + P, z.data() + t * P);
    Gemm(T, P, H, x.data(), H, head[0].data<float>(), 1.f, z.data(), P);
    ParallelFor(T * P, kRows * H, threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) z[i] = std::tanh(z[i]);
    });
    Gemm(T, 1, P, z.data(), P, head[2].data<float>(), 0.f, score.data(), 1);
    for (int64_t b = 0; b < B; ++b) {
      SoftmaxOverSequence(score.data() + b * L, mask.data() + b * L, L, 1);
      PoolHeads(score.data() + b * L, x.data() + b * L * H, H, L, 1, H, rows.data() + b * H);
    }
    at = 3;
  } else if (pooler == 1) {
    for (int64_t b = 0; b < B; ++b) {
      std::vector<float> weight(L);
      float count = 0.f;
      for (int64_t l = 0; l < L; ++l) count += keep[b * L + l] ? 1.f : 0.f;
      for (int64_t l = 0; l < L; ++l) weight[l] = (keep[b * L + l] ? 1.f : 0.f) / std::max(count, 1.f);
      PoolHeads(weight.data(), x.data() + b * L * H, H, L, 1, H, rows.data() + b * H);
    }
  } else {
    for (int64_t b = 0; b < B; ++b) std::copy(x.data() + b * L * H, x.data() + b * L * H + H, rows.data() + b * H);
  }
  const int64_t C = head[at].shape()[1];
  auto logits = paddle::empty({B, C}, paddle::DataType::FLOAT32, input_ids.place());
  float* out = logits.data<float>();
  const float* bc = head[at + 1].data<float>();
  for (int64_t b = 0; b < B; ++b) std::copy(bc, bc + C, out + b * C);
  Gemm(B, C, H, rows.data(), H, head[at].data<float>(), 1.f, out, C);
  return {logits};
}

std::vector<std::vector<int64_t>> ClassifierInferShape(const std::vector<int64_t>& ids, const std::vector<int64_t>& mask,
                                                       const std::vector<std::vector<int64_t>>& embed,
                                                       const std::vector<std::vector<int64_t>>& layers,
                                                       const std::vector<std::vector<int64_t>>& head) {
  return {{ids[0], head.back()[0]}};
}

std::vector<paddle::DataType> ClassifierInferDtype(const paddle::DataType& ids, const paddle::DataType& mask,
                                                   const std::vector<paddle::DataType>& embed,
                                                   const std::vector<paddle::DataType>& layers,
                                                   const std::vector<paddle::DataType>& head) {
  return {paddle::DataType::FLOAT32};
}

PD_BUILD_OP(fastformer_classifier_infer)
    .Inputs({"InputIds", "AttentionMask", paddle::Vec("Embed"), paddle::Vec("Layers"), paddle::Vec("Head")})
    .Outputs({"Logits"})
    .Attrs({"epsilon: float", "pooler: int", "mask_value: float"})
    .SetKernelFn(PD_KERNEL(ClassifierForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ClassifierInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ClassifierInferDtype));
