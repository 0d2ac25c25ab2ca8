// CPU kernels for training where Paddle's own are single-threaded loops several times slower (benchmarks/README.md).
// Float32, contiguous tensors. Parallel on plain std::threads, started per call and joined before returning: an
// OpenMP runtime here would be a second one beside the Intel OpenMP of Paddle's MKL, and its idle threads spin on the
// same cores as MKL's (a 2.6x slower step was measured at small batches).
//
// LayerNorm over the last axis. Per row r of x [M, H] (mean and rstd recomputed from x, as the forward does):
//   x_hat = (x - mean) * rstd,   g_hat = dy * w
//   dx    = rstd * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat))
//   dw    = sum over rows of dy * x_hat,   db = sum over rows of dy
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "paddle/extension.h"

// Threads: OMP_NUM_THREADS when set (train.py sets it to the core count), else every core.
static int MaxThreads() {
  static const int threads = [] {
    const char* env = std::getenv("OMP_NUM_THREADS");
    const int n = env ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
    return std::max(1, n);
  }();
  return threads;
}

// body(begin, end, t) over [0, n) in contiguous chunks, chunk t on thread t; at least `grain` items per thread.
// The same n and thread count always give the same chunks.
template <typename Body>
static int ParallelFor(int64_t n, int64_t grain, const Body& body) {
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(MaxThreads(), n / std::max<int64_t>(grain, 1))));
  const int64_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) {
    workers.emplace_back(body, std::min(n, t * chunk), std::min(n, (t + 1) * chunk), t);
  }
  body(0, std::min(n, chunk), 0);
  for (auto& worker : workers) worker.join();
  return threads;
}

std::vector<paddle::Tensor> LayerNormBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                              const paddle::Tensor& dy, float epsilon) {
  PD_CHECK(x.is_cpu() && weight.is_cpu() && dy.is_cpu(), "fastformer_ln_backward: CPU tensors only");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32 && weight.dtype() == paddle::DataType::FLOAT32 &&
               dy.dtype() == paddle::DataType::FLOAT32,
           "fastformer_ln_backward: float32 only");
  PD_CHECK(x.shape() == dy.shape(), "fastformer_ln_backward: x and dy shapes differ");
  const int64_t h = x.shape().back();
  PD_CHECK(weight.numel() == h, "fastformer_ln_backward: weight must have the last axis' size");
  const int64_t m = x.numel() / h;

  auto dx = paddle::empty(x.shape(), x.dtype(), x.place());
  auto dw = paddle::zeros({h}, x.dtype(), x.place());
  auto db = paddle::zeros({h}, x.dtype(), x.place());
  const float* X = x.data<float>();
  const float* W = weight.data<float>();
  const float* G = dy.data<float>();
  float* DX = dx.data<float>();
  float* DW = dw.data<float>();
  float* DB = db.data<float>();

  // Per-thread partial sums of dw and db, added in thread order afterwards: the same result on every run with the
  // same thread count.
  std::vector<float> dw_parts(MaxThreads() * h, 0.f), db_parts(MaxThreads() * h, 0.f);
  const int threads = ParallelFor(m, 64, [&](int64_t begin, int64_t end, int t) {
    float* dw_part = dw_parts.data() + t * h;
    float* db_part = db_parts.data() + t * h;
    std::vector<float> x_hat(h);
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = X + r * h;
      const float* gr = G + r * h;
      float* dxr = DX + r * h;
      float mean = 0.f, var = 0.f;
      for (int64_t j = 0; j < h; ++j) mean += xr[j];
      mean /= h;
      for (int64_t j = 0; j < h; ++j) var += (xr[j] - mean) * (xr[j] - mean);
      const float rstd = 1.f / std::sqrt(var / h + epsilon);
      float mean_g = 0.f, mean_gx = 0.f;
      for (int64_t j = 0; j < h; ++j) {
        x_hat[j] = (xr[j] - mean) * rstd;
        const float g_hat = gr[j] * W[j];
        mean_g += g_hat;
        mean_gx += g_hat * x_hat[j];
        dw_part[j] += gr[j] * x_hat[j];
        db_part[j] += gr[j];
      }
      mean_g /= h;
      mean_gx /= h;
      for (int64_t j = 0; j < h; ++j) dxr[j] = (gr[j] * W[j] - mean_g - x_hat[j] * mean_gx) * rstd;
    }
  });
  for (int t = 0; t < threads; ++t) {
    for (int64_t j = 0; j < h; ++j) {
      DW[j] += dw_parts[t * h + j];
      DB[j] += db_parts[t * h + j];
    }
  }
  return {dx, dw, db};
}

// GELU (exact, erf form): y = x * Phi(x);  dx = dy * (Phi(x) + x * phi(x)),  phi the standard normal density.
std::vector<paddle::Tensor> GeluBackward(const paddle::Tensor& x, const paddle::Tensor& dy) {
  PD_CHECK(x.is_cpu() && dy.is_cpu(), "fastformer_gelu_backward: CPU tensors only");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32 && dy.dtype() == paddle::DataType::FLOAT32,
           "fastformer_gelu_backward: float32 only");
  PD_CHECK(x.shape() == dy.shape(), "fastformer_gelu_backward: x and dy shapes differ");
  auto dx = paddle::empty(x.shape(), x.dtype(), x.place());
  const float* X = x.data<float>();
  const float* G = dy.data<float>();
  float* DX = dx.data<float>();
  const int64_t n = x.numel();
  const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
  ParallelFor(n, 1 << 14, [&](int64_t begin, int64_t end, int) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float v = X[i];
      const float cdf = 0.5f * (1.f + std::erf(v * inv_sqrt2));
      const float pdf = inv_sqrt_2pi * std::exp(-0.5f * v * v);
      DX[i] = G[i] * (cdf + v * pdf);
    }
  });
  return {dx};
}

// Dropout (upscale in train): keep x[i] with probability 1 - p, scaled by 1 / (1 - p). The random numbers are
// counter based (splitmix64 of seed + i): the same mask for the same seed whatever the thread count; the seed is
// drawn from Paddle's generator by the caller, so paddle.seed makes runs repeatable.
static inline uint64_t SplitMix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<paddle::Tensor> DropoutForward(const paddle::Tensor& x, int64_t seed, float p) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "fastformer_dropout: float32 CPU tensors only");
  PD_CHECK(p > 0.f && p < 1.f, "fastformer_dropout: p must be in (0, 1)");
  auto out = paddle::empty(x.shape(), x.dtype(), x.place());
  auto mask = paddle::empty(x.shape(), paddle::DataType::UINT8, x.place());
  const float* X = x.data<float>();
  float* Y = out.data<float>();
  uint8_t* M = mask.data<uint8_t>();
  const int64_t n = x.numel();
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(p) * 16777216.0);  // p * 2^24
  const float scale = 1.f / (1.f - p);
  const uint64_t base = SplitMix64(static_cast<uint64_t>(seed));
  ParallelFor(n, 1 << 14, [&](int64_t begin, int64_t end, int) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t keep = (SplitMix64(base + static_cast<uint64_t>(i)) >> 40) >= threshold;  // 24 random bits
      M[i] = keep;
      Y[i] = keep ? X[i] * scale : 0.f;
    }
  });
  return {out, mask};
}

std::vector<paddle::Tensor> DropoutBackward(const paddle::Tensor& mask, const paddle::Tensor& dy, float p) {
  PD_CHECK(dy.is_cpu() && dy.dtype() == paddle::DataType::FLOAT32, "fastformer_dropout_backward: float32 CPU only");
  PD_CHECK(mask.shape() == dy.shape(), "fastformer_dropout_backward: mask and dy shapes differ");
  auto dx = paddle::empty(dy.shape(), dy.dtype(), dy.place());
  const uint8_t* M = mask.data<uint8_t>();
  const float* G = dy.data<float>();
  float* DX = dx.data<float>();
  const int64_t n = dy.numel();
  const float scale = 1.f / (1.f - p);
  ParallelFor(n, 1 << 14, [&](int64_t begin, int64_t end, int) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) DX[i] = M[i] ? G[i] * scale : 0.f;
  });
  return {dx};
}

// (A name ending in "_grad" would be taken for the gradient of an op "fastformer_ln".)
PD_BUILD_OP(fastformer_ln_backward)
    .Inputs({"X", "Weight", "DY"})
    .Outputs({"DX", "DWeight", "DBias"})
    .Attrs({"epsilon: float"})
    .SetKernelFn(PD_KERNEL(LayerNormBackward));

PD_BUILD_OP(fastformer_gelu_backward)
    .Inputs({"X", "DY"})
    .Outputs({"DX"})
    .SetKernelFn(PD_KERNEL(GeluBackward));

std::vector<std::vector<int64_t>> DropoutInferShape(const std::vector<int64_t>& x_shape) {
  return {x_shape, x_shape};
}

std::vector<paddle::DataType> DropoutInferDtype(const paddle::DataType& x_dtype) {
  return {x_dtype, paddle::DataType::UINT8};
}

PD_BUILD_OP(fastformer_dropout)
    .Inputs({"X"})
    .Outputs({"Out", "Mask"})
    .Attrs({"seed: int64_t", "p: float"})
    .SetKernelFn(PD_KERNEL(DropoutForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DropoutInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DropoutInferDtype));

PD_BUILD_OP(fastformer_dropout_backward)
    .Inputs({"Mask", "DY"})
    .Outputs({"DX"})
    .Attrs({"p: float"})
    .SetKernelFn(PD_KERNEL(DropoutBackward));
