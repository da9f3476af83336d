// The output product of a CSR matrix: out (V, N) = bias + A (V, K) @ X (K, N), X row-major.
//
// The decoder of an exported language model (V = 10,000 words, N = T*B tokens) is the one wide
// product of the runtime, and MKL's CSR product (torch.addmm) ran a decoder pruned to 19.5%
// density no faster than the dense GEMM ran the whole matrix (README, "The decoder"). Here
// each thread takes a contiguous share of A's rows and walks X in column chunks of kVectors
// AVX-512 vectors: a chunk of X (K x 64 floats) stays in cache while the thread's rows
// pass over it, a row's chunk of out stays in kVectors registers (independent FMA
// chains), and each nonzero is one broadcast and kVectors FMAs against one row of X.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include <immintrin.h>

namespace {

struct CsrRows {
  const int32_t* crow;
  const int32_t* col;
  const float* val;
};

#ifdef __AVX512F__
// Vectors of a column chunk: 4 (64 columns; a 42 KB chunk of X at K = 164). At PTB's final
// decoder shape (V = 10,000, K = 164, N = 1120, 19.5% dense), with the output reused, widths of
// 2, 3, 4, 5, 6 and 8 vectors took 19.2, 16.6, 14.1-15.2, 14.5, 25.7 and 27.4 ms on 1 thread,
// and interleaving 2-8 rows per chunk (more independent FMA chains) was slower than one row.
#ifndef CSR_NV
#define CSR_NV 4
#endif
constexpr int kVectors = CSR_NV;

// Row r of out, columns [c0, c0 + 16*NV) (xc, oc point at column c0): the last vector masked
// to ``tail`` lanes.
template <int NV>
inline void chunk_row(const CsrRows& a, const float* __restrict xc, int64_t N, const float* bias, int64_t r,
                      __mmask16 tail, float* __restrict oc) {
  __m512 acc[NV];
  const __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);
  for (int v = 0; v < NV; ++v) acc[v] = b;
  for (int32_t j = a.crow[r]; j < a.crow[r + 1]; ++j) {
    const __m512 w = _mm512_set1_ps(a.val[j]);
    const float* __restrict xr = xc + static_cast<int64_t>(a.col[j]) * N;
    for (int v = 0; v < NV - 1; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xr + 16 * v), acc[v]);
    acc[NV - 1] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(tail, xr + 16 * (NV - 1)), acc[NV - 1]);
  }
  float* o = oc + r * N;
  for (int v = 0; v < NV - 1; ++v) _mm512_storeu_ps(o + 16 * v, acc[v]);
  _mm512_mask_storeu_ps(o + 16 * (NV - 1), tail, acc[NV - 1]);
}

template <int NV>
void chunk(const CsrRows& a, const float* x, int64_t N, const float* bias, int64_t r0, int64_t r1, int64_t c0,
           __mmask16 tail, float* out) {
  for (int64_t r = r0; r < r1; ++r) chunk_row<NV>(a, x + c0, N, bias, r, tail, out + c0);
}

void rows_avx512(const CsrRows& a, const float* x, int64_t N, const float* bias, int64_t r0, int64_t r1,
                 float* out) {
  for (int64_t c0 = 0; c0 < N; c0 += 16 * kVectors) {
    const int64_t width = std::min<int64_t>(16 * kVectors, N - c0);
    const int nv = static_cast<int>((width + 15) / 16);
    const int lanes = static_cast<int>(width - 16 * (nv - 1));
    const __mmask16 tail = static_cast<__mmask16>((1u << lanes) - 1u);
    switch (nv) {
      case 1: chunk<1>(a, x, N, bias, r0, r1, c0, tail, out); break;
#if CSR_NV >= 2
      case 2: chunk<2>(a, x, N, bias, r0, r1, c0, tail, out); break;
#endif
#if CSR_NV >= 3
      case 3: chunk<3>(a, x, N, bias, r0, r1, c0, tail, out); break;
#endif
#if CSR_NV >= 4
      case 4: chunk<4>(a, x, N, bias, r0, r1, c0, tail, out); break;
#endif
#if CSR_NV >= 5
      case 5: chunk<5>(a, x, N, bias, r0, r1, c0, tail, out); break;
#endif
#if CSR_NV >= 6
      case 6: chunk<6>(a, x, N, bias, r0, r1, c0, tail, out); break;
#endif
#if CSR_NV >= 7
      case 7: chunk<7>(a, x, N, bias, r0, r1, c0, tail, out); break;
#endif
#if CSR_NV >= 8
      case 8: chunk<8>(a, x, N, bias, r0, r1, c0, tail, out); break;
#endif
      default: TORCH_CHECK(false, "csr_mm: chunk width");
    }
  }
}
#endif

// Without AVX-512: the same order, the compiler's vectorisation of a row's axpys.
[[maybe_unused]] void rows_generic(const CsrRows& a, const float* x, int64_t N, const float* bias, int64_t r0, int64_t r1,
                  float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    float* __restrict o = out + r * N;
    const float b = bias ? bias[r] : 0.0f;
    for (int64_t n = 0; n < N; ++n) o[n] = b;
    for (int32_t j = a.crow[r]; j < a.crow[r + 1]; ++j) {
      const float w = a.val[j];
      const float* __restrict xr = x + static_cast<int64_t>(a.col[j]) * N;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) o[n] += w * xr[n];
    }
  }
}

// The first row of thread ``id``'s share: shares of equal nonzeros, not equal rows (a pruned
// decoder's rows differ in length: frequent words keep more weights).
int64_t share_start(const int32_t* crow, int64_t V, int64_t id, int64_t nt) {
  if (id == 0) return 0;
  if (id == nt) return V;
  const int64_t target = static_cast<int64_t>(crow[V]) * id / nt;
  return std::lower_bound(crow, crow + V + 1, target) - crow;
}

// The (V, N) output, reused across calls once the caller holds no view of the last one: a fresh
// output (45 MB for PTB's decoder) was new pages on every call, and faulting them in cost about
// as much as the product itself (README, "The decoder"). The caller gets a view, so that
// nothing it does to its tensor's shape reaches the one kept here.
at::Tensor output(int64_t V, int64_t N, const at::TensorOptions& options) {
  thread_local at::Tensor kept;
  const bool free = kept.defined() && kept.storage().use_count() == 1 && kept.size(0) == V && kept.size(1) == N;
  if (!free) kept = at::empty({V, N}, options);
  return kept.view({V, N});
}

}  // namespace

// a: CSR (V, K) float32 with int32 indices; x: (K, N) float32 (made contiguous); bias: (V,) or
// empty. Returns (V, N).
at::Tensor csr_mm(const at::Tensor& a, const at::Tensor& x_, const at::Tensor& bias_) {
  TORCH_CHECK(a.layout() == at::kSparseCsr && a.dim() == 2, "a must be a 2-D CSR matrix");
  TORCH_CHECK(a.crow_indices().scalar_type() == at::kInt && a.col_indices().scalar_type() == at::kInt,
              "a must have int32 indices (runtime.packing.to_csr)");
  TORCH_CHECK(a.values().scalar_type() == at::kFloat && x_.scalar_type() == at::kFloat, "a and x must be float32");
  TORCH_CHECK(a.device().is_cpu() && x_.device().is_cpu(), "a and x must be on the CPU");
  TORCH_CHECK(x_.dim() == 2 && x_.size(0) == a.size(1), "x must be (K, N) with K = a's columns");
  const int64_t V = a.size(0), N = x_.size(1);
  const at::Tensor x = x_.contiguous();
  const at::Tensor bias = bias_.contiguous();
  TORCH_CHECK(bias.numel() == 0 || bias.numel() == V, "bias must have one value per row of a");
  const at::Tensor crow = a.crow_indices().contiguous(), col = a.col_indices().contiguous();
  const at::Tensor val = a.values().contiguous();
  const CsrRows m{crow.data_ptr<int32_t>(), col.data_ptr<int32_t>(), val.data_ptr<float>()};
  const float* xp = x.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  at::Tensor out = output(V, N, x.options());
  if (V == 0 || N == 0) return out;
  float* op = out.data_ptr<float>();
#pragma omp parallel num_threads(std::max(1, at::get_num_threads()))
  {
    const int64_t id = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t r0 = share_start(m.crow, V, id, nt), r1 = share_start(m.crow, V, id + 1, nt);
#ifdef __AVX512F__
    rows_avx512(m, xp, N, bp, r0, r1, op);
#else
    rows_generic(m, xp, N, bp, r0, r1, op);
#endif
  }
  return out;
}
