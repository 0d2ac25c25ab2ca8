// Inference: the whole folded classifier (fastformer/inference/graph.py, FoldedClassifier) as one Paddle operator,
// so that Paddle Inference runs one kernel per forward instead of ~60 (docs/inference_speed.md, "Fused operator").
// CPU. Matrix products by oneDNN's sgemm, or its gemm_bf16bf16f32 where the weights are bfloat16 (the bf16 program;
// the libdnnl Paddle ships, which picks the CPU's instruction set and honours ONEDNN_MAX_CPU_ISA); the rest in loops.
// Large batches run in blocks of a few reviews, one block per thread at a time (std::threads: an OpenMP runtime here
// would be a second one beside the Intel OpenMP of Paddle's oneDNN), each block from the embedding to the logits.
// Inputs: input_ids, attention_mask [B, L] int64; Embed = {word [V, H], position [P, H], ln_w, ln_b};
// Layers = 12 tensors per layer {W_in = [Wq | Wk | Wx] [H, 3H], b_in [3H], wqa [H, N], wka [H, N], Wu [H, H],
// ln1_w, ln1_b, Wi [H, I], bi [I], Wo [I, H], ln2_w, ln2_b}; Head = {W1 [H, P], b1 [P], w2 [P, 1]} (attention pooling
// only) + {Wc [H, C], bc [C]}. W_in, Wu, Wi, Wo, W1 and Wc are float32 or bfloat16; the rest float32.
// Attributes: epsilon, pooler (0 attention, 1 mean, 2 first), mask_value.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <dlfcn.h>
#include <memory>
#include <thread>
#include <vector>

#include "paddle/extension.h"

// oneDNN's C products (row-major; 0 is success)
extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
extern "C" int dnnl_gemm_bf16bf16f32(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                                     const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                                     float* C, int64_t ldc);


// A float array that is not zero-filled on allocation (std::vector is: 50 MB of writes per batch of 64 x 128)
struct Buffer {
  explicit Buffer(int64_t n) : ptr(new float[n]) {}
  float* data() { return ptr.get(); }
  std::unique_ptr<float[]> ptr;
};

// The math-library threads Paddle set for this predictor (omp_get_max_threads of its Intel OpenMP), else every core
static int Threads() {
  using Fn = int (*)();
  static const Fn omp = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  const int n = omp ? omp() : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, n);
}

// the calling thread's OpenMP team size for oneDNN's products (a worker below runs its products on itself alone)
static void SetThreads(int n) {
  using Fn = void (*)(int);
  static const Fn omp = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (omp) omp(n);
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

// tanh of x [n], in place
FF_CLONES static void Tanh(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
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

// Python's GIL, let go while the operator computes where a Python thread holding it called it (Paddle Inference's
// run and Paddle's dygraph keep it): serve.py's event loop reads and answers requests meanwhile. No Python object is
// touched in between; where no Python runtime is loaded the symbols are missing and nothing happens.
class GilReleased {
 public:
  GilReleased() {
    static const auto running = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "Py_IsInitialized"));
    static const auto holds = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "PyGILState_Check"));
    static const auto save = reinterpret_cast<void* (*)()>(dlsym(RTLD_DEFAULT, "PyEval_SaveThread"));
    restore_ = reinterpret_cast<void (*)(void*)>(dlsym(RTLD_DEFAULT, "PyEval_RestoreThread"));
    if (running && holds && save && restore_ && running() && holds()) state_ = save();
  }
  ~GilReleased() {
    if (state_) restore_(state_);
  }
  GilReleased(const GilReleased&) = delete;
  GilReleased& operator=(const GilReleased&) = delete;

 private:
  void* state_ = nullptr;
  void (*restore_)(void*) = nullptr;
};

// token rows from which a batch is split into blocks that run on all threads at once (below: one block, the products
// threaded by oneDNN), and the rows of one block: a few reviews, whose activations stay in a core's L2 cache
// (block sizes of 256-1,024 rows were tried by hand on 64 x 128 tokens; 512 was among the fastest, not timed side by
// side)
constexpr int64_t kParallelRows = 1024;
constexpr int64_t kBlockRows = 512;

// One forward's weights: GEMM weights float32, or bfloat16 (the export's bf16 program: products by oneDNN's
// gemm_bf16bf16f32, activations rounded to bf16 on the way in, sums in float32)
struct Weight {
  const float* f = nullptr;
  const uint16_t* h = nullptr;
};

static Weight W(const paddle::Tensor& t) {
  if (t.dtype() == paddle::DataType::BFLOAT16) return {nullptr, static_cast<const uint16_t*>(t.data())};
  return {t.data<float>(), nullptr};
}

struct Layer {
  Weight w_in, wu, wi, wo;
  const float *b_in, *wqa, *wka, *ln1_w, *ln1_b, *bi, *ln2_w, *ln2_b;
};

struct Net {
  int64_t L, H, N, D, I, P, C;
  float eps;
  int pooler;
  const int64_t *ids, *keep;
  const float* mask;
  // tokens computed per review: up to its last real token where the padding is a suffix (padded rows change no real
  // row: their softmax weight is exactly 0), else all L
  std::vector<int64_t> len;
  const float *word, *position, *ln_w, *ln_b;
  std::vector<Layer> layers;
  Weight w1, wc;
  const float *b1, *w2, *bc;
};

// one worker's buffers for blocks of up to `rows` token rows and `reviews` reviews, left uninitialised: every
// element is written before it is read
struct Scratch {
  Scratch(const Net& net, int64_t rows, int64_t reviews)
      : x(rows * net.H), qkx(rows * 3 * net.H), s(rows * net.N), p(rows * net.H),
        h(rows * std::max<int64_t>({net.I, net.P, 1})),
        a16(new uint16_t[rows * std::max<int64_t>({net.H, net.I, net.P, 1})]), pooled(net.H),
        rows(reviews * net.H), at(reviews + 1) {}
  Buffer x, qkx, s, p, h;
  std::unique_ptr<uint16_t[]> a16;
  std::vector<float> pooled;
  Buffer rows;
  std::vector<int64_t> at;  // first row of each review of the block, and the end
};

// a [m, k] (row stride lda) -> out [m, k] in bfloat16, rounded to nearest even
FF_CLONES static void ToBf16(const float* a, int64_t m, int64_t k, int64_t lda, uint16_t* out) {
  for (int64_t r = 0; r < m; ++r) {
    const uint32_t* row = reinterpret_cast<const uint32_t*>(a + r * lda);
    uint16_t* o = out + r * k;
#pragma omp simd
    for (int64_t c = 0; c < k; ++c) o[c] = static_cast<uint16_t>((row[c] + 0x7FFFu + ((row[c] >> 16) & 1u)) >> 16);
  }
}

// C[m, n] (row stride ldc) = A[m, k] (row stride lda) B[k, n] + beta C; 0 or oneDNN's status
static int Gemm(Scratch& sc, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, Weight b, float beta,
                float* c, int64_t ldc) {
  if (!b.h) return dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, lda, b.f, n, beta, c, ldc);
  ToBf16(a, m, k, lda, sc.a16.get());
  return dnnl_gemm_bf16bf16f32('N', 'N', m, n, k, 1.0f, sc.a16.get(), k, b.h, n, beta, c, ldc);
}

// rows [r, n] <- bias [n] each
static void Fill(float* rows, int64_t r, int64_t n, const float* bias) {
  for (int64_t i = 0; i < r; ++i) std::copy(bias, bias + n, rows + i * n);
}

// logits [nb, C] of reviews b0 .. b0 + nb, their rows packed one after another (net.len[b] each); 0 or the first
// failed product's status
static int Block(const Net& net, Scratch& sc, int64_t b0, int64_t nb, float* logits) {
  const int64_t L = net.L, H = net.H, N = net.N, D = net.D, I = net.I;
  int64_t* at = sc.at.data();
  at[0] = 0;
  for (int64_t b = 0; b < nb; ++b) at[b + 1] = at[b] + net.len[b0 + b];
  const int64_t R = at[nb];
  float *x = sc.x.data(), *qkx = sc.qkx.data(), *s = sc.s.data(), *p = sc.p.data(), *h = sc.h.data();
  int status = 0;
  // x = LN(word[ids] + position[l])
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t l = 0; l < at[b + 1] - at[b]; ++l) {
      const float* we = net.word + net.ids[(b0 + b) * L + l] * H;
      const float* pe = net.position + l * H;
      float* xr = x + (at[b] + l) * H;
#pragma omp simd
      for (int64_t c = 0; c < H; ++c) xr[c] = we[c] + pe[c];
    }
  LayerNorm(x, R, H, net.ln_w, net.ln_b, net.eps);
  for (const Layer& w : net.layers) {
    // [q | k | x Wx + bx] = x [Wq | Wk | Wx] + [bq | bk | bx]
    Fill(qkx, R, 3 * H, w.b_in);
    status = status ? status : Gemm(sc, R, 3 * H, H, x, H, w.w_in, 1.f, qkx, 3 * H);
    // alpha = softmax_l(q wqa + mask) per head; global query = sum_l alpha q; p = k * global query
    status = status ? status : Gemm(sc, R, N, H, qkx, 3 * H, {w.wqa, nullptr}, 0.f, s, N);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t len = at[b + 1] - at[b];
      const float* qb = qkx + at[b] * 3 * H;
      float* sb = s + at[b] * N;
      SoftmaxOverSequence(sb, net.mask + (b0 + b) * L, len, N);
      PoolHeads(sb, qb, 3 * H, len, N, D, sc.pooled.data());
      float* pb = p + at[b] * H;
      const float* g = sc.pooled.data();
      for (int64_t l = 0; l < len; ++l)
#pragma omp simd
        for (int64_t c = 0; c < H; ++c) pb[l * H + c] = qb[l * 3 * H + H + c] * g[c];
    }
    // beta = softmax_l(p wka + mask); global key = sum_l beta p; u = global key * q (values = queries)
    status = status ? status : Gemm(sc, R, N, H, p, H, {w.wka, nullptr}, 0.f, s, N);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t len = at[b + 1] - at[b];
      const float* qb = qkx + at[b] * 3 * H;
      float* sb = s + at[b] * N;
      float* pb = p + at[b] * H;
      SoftmaxOverSequence(sb, net.mask + (b0 + b) * L, len, N);
      PoolHeads(sb, pb, H, len, N, D, sc.pooled.data());
      const float* g = sc.pooled.data();
      for (int64_t l = 0; l < len; ++l)
#pragma omp simd
        for (int64_t c = 0; c < H; ++c) pb[l * H + c] = g[c] * qb[l * 3 * H + c];
    }
    // a = LN(u Wu + x Wx + bx), into x
    for (int64_t r = 0; r < R; ++r) std::copy(qkx + r * 3 * H + 2 * H, qkx + (r + 1) * 3 * H, x + r * H);
    status = status ? status : Gemm(sc, R, H, H, p, H, w.wu, 1.f, x, H);
    LayerNorm(x, R, H, w.ln1_w, w.ln1_b, net.eps);
    // x = LN(gelu(a Wi + bi) Wo + a)
    Fill(h, R, I, w.bi);
    status = status ? status : Gemm(sc, R, I, H, x, H, w.wi, 1.f, h, I);
    Gelu(h, R * I);
    status = status ? status : Gemm(sc, R, H, I, h, I, w.wo, 1.f, x, H);
    LayerNorm(x, R, H, w.ln2_w, w.ln2_b, net.eps);
  }
  // pooled [nb, H]: attention pooling (softmax_l(tanh(x W1 + b1) w2 + mask)), mean over real tokens, or the first
  float* rows = sc.rows.data();
  if (net.pooler == 0) {
    float* z = h;  // [R, P]
    Fill(z, R, net.P, net.b1);
    status = status ? status : Gemm(sc, R, net.P, H, x, H, net.w1, 1.f, z, net.P);
    Tanh(z, R * net.P);
    status = status ? status : Gemm(sc, R, 1, net.P, z, net.P, {net.w2, nullptr}, 0.f, s, 1);
    for (int64_t b = 0; b < nb; ++b) {
      SoftmaxOverSequence(s + at[b], net.mask + (b0 + b) * L, at[b + 1] - at[b], 1);
      PoolHeads(s + at[b], x + at[b] * H, H, at[b + 1] - at[b], 1, H, rows + b * H);
    }
  } else if (net.pooler == 1) {
    std::vector<float> weight(L);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t* keep = net.keep + (b0 + b) * L;
      const int64_t len = at[b + 1] - at[b];
      float count = 0.f;
      for (int64_t l = 0; l < len; ++l) count += keep[l] ? 1.f : 0.f;
      for (int64_t l = 0; l < len; ++l) weight[l] = (keep[l] ? 1.f : 0.f) / std::max(count, 1.f);
      PoolHeads(weight.data(), x + at[b] * H, H, len, 1, H, rows + b * H);
    }
  } else {
    for (int64_t b = 0; b < nb; ++b) std::copy(x + at[b] * H, x + at[b] * H + H, rows + b * H);
  }
  Fill(logits, nb, net.C, net.bc);
  return status ? status : Gemm(sc, nb, net.C, H, rows, H, net.wc, 1.f, logits, net.C);
}

std::vector<paddle::Tensor> ClassifierForward(const paddle::Tensor& input_ids, const paddle::Tensor& attention_mask,
                                              const std::vector<paddle::Tensor>& embed,
                                              const std::vector<paddle::Tensor>& layers,
                                              const std::vector<paddle::Tensor>& head, float epsilon, int pooler,
                                              float mask_value) {
  PD_CHECK(input_ids.is_cpu(), "fastformer_classifier_infer: CPU only");
  PD_CHECK(layers.size() % 12 == 0, "fastformer_classifier_infer: 12 tensors per layer");
  Net net;
  const int64_t B = input_ids.shape()[0], L = input_ids.shape()[1], V = embed[0].shape()[0];
  net.L = L;
  net.H = embed[0].shape()[1];
  PD_CHECK(L <= embed[1].shape()[0], "fastformer_classifier_infer: sequence longer than the position embeddings");
  net.N = layers.empty() ? 1 : layers[2].shape()[1];
  net.D = net.H / net.N;
  net.I = layers.empty() ? 0 : layers[7].shape()[1];
  net.eps = epsilon;
  net.pooler = pooler;
  net.ids = input_ids.data<int64_t>();
  net.keep = attention_mask.data<int64_t>();
  for (int64_t t = 0; t < B * L; ++t)
    PD_CHECK(net.ids[t] >= 0 && net.ids[t] < V, "fastformer_classifier_infer: token id ", net.ids[t],
             " outside the vocabulary");
  std::vector<float> mask(B * L);
  for (int64_t t = 0; t < B * L; ++t) mask[t] = net.keep[t] ? 0.f : mask_value;
  net.mask = mask.data();
  net.word = embed[0].data<float>();
  net.position = embed[1].data<float>();
  net.ln_w = embed[2].data<float>();
  net.ln_b = embed[3].data<float>();
  for (size_t at = 0; at < layers.size(); at += 12) {
    const paddle::Tensor* w = &layers[at];
    net.layers.push_back({W(w[0]), W(w[4]), W(w[7]), W(w[9]), w[1].data<float>(), w[2].data<float>(),
                          w[3].data<float>(), w[5].data<float>(), w[6].data<float>(), w[8].data<float>(),
                          w[10].data<float>(), w[11].data<float>()});
  }
  size_t at = 0;
  net.P = 0;
  if (pooler == 0) {
    net.w1 = W(head[0]);
    net.P = head[0].shape()[1];
    net.b1 = head[1].data<float>();
    net.w2 = head[2].data<float>();
    at = 3;
  }
  net.wc = W(head[at]);
  net.bc = head[at + 1].data<float>();
  net.C = head[at].shape()[1];
  auto logits = paddle::empty({B, net.C}, paddle::DataType::FLOAT32, input_ids.place());
  float* out = logits.data<float>();
  // rows to compute per review: padding after the last real token is skipped (a mask with holes, or none, keeps all)
  net.len.assign(B, L);
  int64_t total = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t* keep = net.keep + b * L;
    int64_t real = 0, last = -1;
    for (int64_t l = 0; l < L; ++l)
      if (keep[l]) ++real, last = l;
    if (real > 0 && real == last + 1) net.len[b] = real;
    total += net.len[b];
  }
  // large batches: blocks of a few reviews (up to kBlockRows rows) on every thread at once (or one after another on
  // one thread), each block's rows kept in the core's cache from the embedding to the logits, its products on that
  // thread alone; small ones: one block, products on every thread
  std::vector<int64_t> starts{0};
  for (int64_t b = 0, rows = 0; b < B; ++b) {
    if (rows > 0 && rows + net.len[b] > kBlockRows) starts.push_back(b), rows = 0;
    rows += net.len[b];
  }
  starts.push_back(B);
  const int64_t blocks = static_cast<int64_t>(starts.size()) - 1;
  const int threads = Threads();
  int status = 0;
  {
    GilReleased unlocked;
    if (total < kParallelRows || blocks < 2) {
      Scratch sc(net, total, B);
      status = Block(net, sc, 0, B, out);
    } else {
      const int workers = static_cast<int>(std::min<int64_t>(threads, blocks));
      std::atomic<int64_t> next{0};
      std::vector<int> failed(workers, 0);
      auto work = [&](int worker) {
        SetThreads(1);
        Scratch sc(net, std::max(kBlockRows, L), std::min(kBlockRows, B));
        for (int64_t k; !failed[worker] && (k = next++) < blocks;)
          failed[worker] = Block(net, sc, starts[k], starts[k + 1] - starts[k], out + starts[k] * net.C);
      };
      std::vector<std::thread> pool;
      for (int worker = 1; worker < workers; ++worker) pool.emplace_back(work, worker);
      work(0);
      SetThreads(threads);
      for (auto& t : pool) t.join();
      for (int f : failed) status = status ? status : f;
    }
  }
  PD_CHECK(status == 0, "fastformer_classifier_infer: oneDNN's matrix product failed (status ", status, ")");
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
