// The H-LSTM time loop, compiled: one call runs every step of one layer (one direction).
//
// Layout (as runtime/layers.py): products are W @ X on transposed activations, so the state
// h is (H, B) with the batch contiguous, and a CSR row times the state is a B-wide
// multiply-add per nonzero (one AVX-512 vector for B = 16). The input half of all steps
// (U_x x_t + u_b) is computed before the loop by one GEMM and passed in as pre (4G, T*B):
// column t*B + b. Per step: z = relu(pre_t + U_h h) (4G, B); gates = w_b + W z (4H, B) with
// W dense per gate (4, H, G) or one block-diagonal CSR (4H, 4G); then f, i, o = sigmoid,
// g = tanh, c = f*c + i*g, h = o*tanh(c). Nothing is allocated inside the loop.
//
// The gate nonlinearities are vectorised: AVX-512 intrinsics where the CPU has them (cell_span),
// else plain loops over glibc's vector expf.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>

#include <immintrin.h>
#include <math.h>

#include <cstdint>

namespace {

// expf in these loops is glibc's vector variant (libmvec, 16 floats per call with AVX-512):
// the build passes -ffast-math, under which <math.h> declares it. A scalar expf per element
// would cost more than all the products of a step.
inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

inline float tanh_fast(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

// out (rows, B) = init (rows, B; strides init_ld, init_step) + A (rows, K) CSR @ x (K, B),
// through ReLU if ``relu``. Rows have few nonzeros at the sparsities that pick CSR, so per-row
// overhead matters: the batch width is a compile-time constant where it is a common one (BW > 0).
struct Csr {
  const int32_t* crow;
  const int32_t* col;
  const float* val;
};

template <int64_t BW>
void csr_rows_of(const Csr& a, int64_t lo, int64_t hi, const float* __restrict x, int64_t B_,
                 const float* __restrict init, int64_t init_ld, int64_t init_step, float* __restrict out, bool relu) {
  const int64_t B = BW > 0 ? BW : B_;
  for (int64_t r = lo; r < hi; ++r) {
    float acc[BW > 0 ? BW : 1];
    float* dst = BW > 0 ? acc : out + r * B;
    const float* start = init + r * init_ld;
    if (init_step == 1) {  // the common, contiguous case: a vector copy, not a gather
      for (int64_t b = 0; b < B; ++b) dst[b] = start[b];
    } else {
      for (int64_t b = 0; b < B; ++b) dst[b] = start[b * init_step];
    }
    for (int32_t j = a.crow[r]; j < a.crow[r + 1]; ++j) {
      const float v = a.val[j];
      const float* __restrict xr = x + static_cast<int64_t>(a.col[j]) * B;
#pragma omp simd
      for (int64_t b = 0; b < B; ++b) dst[b] += v * xr[b];
    }
    for (int64_t b = 0; b < B; ++b) out[r * B + b] = relu && dst[b] < 0.0f ? 0.0f : dst[b];
  }
}

#ifdef __AVX512F__
// Batch 16 (the profile's and the flow's inference batch) is exactly one AVX-512 register:
// the accumulator stays in it, each nonzero is one broadcast-FMA.
void csr_rows16(const Csr& a, int64_t lo, int64_t hi, const float* __restrict x, const float* __restrict init,
                int64_t init_ld, int64_t init_step, float* __restrict out, bool relu) {
  const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(static_cast<int32_t>(init_step)));
  for (int64_t r = lo; r < hi; ++r) {
    const float* start = init + r * init_ld;
    __m512 acc = init_step == 1 ? _mm512_loadu_ps(start) : _mm512_i32gather_ps(lanes, start, 4);
    for (int32_t j = a.crow[r]; j < a.crow[r + 1]; ++j) {
      acc = _mm512_fmadd_ps(_mm512_set1_ps(a.val[j]), _mm512_loadu_ps(x + static_cast<int64_t>(a.col[j]) * 16), acc);
    }
    _mm512_storeu_ps(out + r * 16, relu ? _mm512_max_ps(acc, _mm512_setzero_ps()) : acc);
  }
}
#endif

void csr_rows(const Csr& a, int64_t lo, int64_t hi, const float* x, int64_t B, const float* init, int64_t init_ld,
              int64_t init_step, float* out, bool relu) {
#ifdef __AVX512F__
  if (B == 16) return csr_rows16(a, lo, hi, x, init, init_ld, init_step, out, relu);
#endif
  switch (B) {
    case 8: return csr_rows_of<8>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
    case 16: return csr_rows_of<16>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
    case 32: return csr_rows_of<32>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
    default: return csr_rows_of<0>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
  }
}

// The cell update of m consecutive state elements: c = f*c + i*g, h = o*tanh(c), h also
// into out. With AVX-512, 16 at a time through an inline exp (2^n by vscalefps, a degree-6
// polynomial for the rest, relative error ~1e-7), a third of the time of libmvec's calls.
#ifdef __AVX512F__
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 q = _mm512_set1_ps(1.9875691500e-4f);
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.3981999507e-3f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.3334519073e-3f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.1665795894e-2f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.6666665459e-1f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(5.0000001201e-1f));
  q = _mm512_fmadd_ps(_mm512_mul_ps(q, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(q, n);
}

inline __m512 sigmoid16(__m512 x) {  // 1 / (1 + e^-x): reciprocal estimate + one Newton step (no divide)
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), x)));
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

inline __m512 tanh16(__m512 x) {  // 2 sigmoid(2x) - 1
  return _mm512_fmsub_ps(_mm512_set1_ps(2.0f), sigmoid16(_mm512_add_ps(x, x)), _mm512_set1_ps(1.0f));
}

void cell_span(const float* f, const float* i, const float* o, const float* g, float* c, float* h, float* out,
               int64_t m) {
  for (int64_t k = 0; k < m; k += 16) {
    const __mmask16 live = m - k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (m - k)) - 1);
    const __m512 ck = _mm512_fmadd_ps(sigmoid16(_mm512_maskz_loadu_ps(live, f + k)), _mm512_maskz_loadu_ps(live, c + k),
                                      _mm512_mul_ps(sigmoid16(_mm512_maskz_loadu_ps(live, i + k)),
                                                    tanh16(_mm512_maskz_loadu_ps(live, g + k))));
    const __m512 hk = _mm512_mul_ps(sigmoid16(_mm512_maskz_loadu_ps(live, o + k)), tanh16(ck));
    _mm512_mask_storeu_ps(c + k, live, ck);
    _mm512_mask_storeu_ps(h + k, live, hk);
    _mm512_mask_storeu_ps(out + k, live, hk);
  }
}
#else
void cell_span(const float* f, const float* i, const float* o, const float* g, float* c, float* h, float* out,
               int64_t m) {
#pragma omp simd
  for (int64_t k = 0; k < m; ++k) {
    const float ck = sigmoid(f[k]) * c[k] + sigmoid(i[k]) * tanh_fast(g[k]);
    c[k] = ck;
    h[k] = sigmoid(o[k]) * tanh_fast(ck);
    out[k] = h[k];
  }
}
#endif

// The cell update of state rows [lo, hi) of D*H (row q: direction q / H, unit q % H), B wide,
// from the gate rows f, i, o, g of each direction: one contiguous span per direction.
void cell_rows(int64_t lo, int64_t hi, int64_t H, int64_t B, const float* gates, float* c, float* h, float* out_t) {
  const int64_t n = H * B;
  for (int64_t d = lo / H; d * H < hi; ++d) {
    const int64_t q0 = std::max(lo, d * H), q1 = std::min(hi, (d + 1) * H);
    const float* f = gates + (d * 4 * H + q0 % H) * B;
    cell_span(f, f + n, f + 2 * n, f + 3 * n, c + q0 * B, h + q0 * B, out_t + q0 * B, (q1 - q0) * B);
  }
}

// A matrix of one product, dense (a strided 2-D or 3-D tensor) or CSR with int32 indices.
struct Matrix {
  bool csr;
  at::Tensor dense;
  at::Tensor crow, col, val;

  static Matrix from(const at::Tensor& t) {
    Matrix m;
    m.csr = t.layout() == at::kSparseCsr;
    if (m.csr) {
      m.crow = t.crow_indices().to(at::kInt).contiguous();
      m.col = t.col_indices().to(at::kInt).contiguous();
      m.val = t.values().contiguous();
    } else {
      m.dense = t.contiguous();
    }
    return m;
  }

  int64_t rows() const { return csr ? crow.numel() - 1 : dense.size(0); }
  Csr view() const { return {crow.data_ptr<int32_t>(), col.data_ptr<int32_t>(), val.data_ptr<float>()}; }
};

void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU for the native runtime");
  TORCH_CHECK(t.scalar_type() == at::kFloat || (t.layout() == at::kSparseCsr && t.values().scalar_type() == at::kFloat),
              name, " must be float32 for the native runtime");
}

}  // namespace

// D stacked directions (1: a language-model layer; 2: a bidirectional speech layer whose
// backward rows of pre are already in reversed time). pre (D*4G, T*B), any strides: U_x x_t + u_b
// of every step; u_h dense (D, 4G, H) or CSR (D*4G, D*H) block-diagonal; w dense (D*4, H, G)
// or CSR (D*4H, D*4G) block-diagonal; w_b (D*4, H). Returns (T, D, H, B), from zero state.
at::Tensor hlstm_loop(const at::Tensor& pre, int64_t steps, const at::Tensor& u_h, const at::Tensor& w,
                      const at::Tensor& w_b) {
  check_float(pre, "pre");
  check_float(u_h, "u_h");
  check_float(w, "w");
  const Matrix uh = Matrix::from(u_h), ww = Matrix::from(w);
  const at::Tensor bias = w_b.contiguous();
  const int64_t H = bias.size(1), D = bias.size(0) / 4, R = pre.size(0);  // R = D*4G
  const int64_t G = R / (4 * D), B = steps ? pre.size(1) / steps : 0;
  TORCH_CHECK(pre.dim() == 2 && pre.size(1) == steps * B, "pre must be (D*4G, T*B)");
  TORCH_CHECK(uh.csr ? uh.rows() == R : (uh.dense.dim() == 3 && uh.dense.size(0) == D), "u_h has the wrong shape");
  TORCH_CHECK(ww.csr ? ww.rows() == D * 4 * H : ww.dense.size(0) == D * 4, "w has the wrong shape");

  auto opts = pre.options();
  at::Tensor out = at::empty({steps, D, H, B}, opts);
  at::Tensor h = at::zeros({D, H, B}, opts), c = at::zeros({D, H, B}, opts);
  at::Tensor z = at::empty({R, B}, opts), gates = at::empty({D * 4 * H, B}, opts);
  at::Tensor bias_rows = bias.reshape({D * 4 * H, 1}).expand({D * 4 * H, B}).contiguous();  // w_b per column
  float* hp = h.data_ptr<float>();
  float* cp = c.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  float* gp = gates.data_ptr<float>();
  const float* pre_p = pre.data_ptr<float>();
  const int64_t row_stride = pre.stride(0), col_stride = pre.stride(1), n = H * B;

  float* op = out.data_ptr<float>();
  const float* bp = bias_rows.data_ptr<float>();
  if (uh.csr && ww.csr) {
    // One parallel region for the whole loop, three barriers a step: forking per product
    // (at::parallel_for) cost more than a second thread saved.
    const Csr a = uh.view(), w2 = ww.view();
#pragma omp parallel num_threads(std::max(1, at::get_num_threads()))
    {
      const int64_t id = omp_get_thread_num(), nt = omp_get_num_threads();
      auto lo = [&](int64_t total) { return total * id / nt; };
      auto hi = [&](int64_t total) { return total * (id + 1) / nt; };
      for (int64_t t = 0; t < steps; ++t) {
        csr_rows(a, lo(R), hi(R), hp, B, pre_p + t * B * col_stride, row_stride, col_stride, zp, true);
#pragma omp barrier
        csr_rows(w2, lo(D * 4 * H), hi(D * 4 * H), zp, B, bp, B, 1, gp, false);
#pragma omp barrier
        cell_rows(lo(D * H), hi(D * H), H, B, gp, cp, hp, op + t * D * n);
#pragma omp barrier
      }
    }
    return out;
  }
  for (int64_t t = 0; t < steps; ++t) {
    // z = relu(pre_t + U_h h), all directions at once
    if (uh.csr) {
      csr_rows(uh.view(), 0, R, hp, B, pre_p + t * B * col_stride, row_stride, col_stride, zp, true);
    } else {
      at::Tensor z3 = z.view({D, 4 * G, B});
      at::baddbmm_out(z3, pre.narrow(1, t * B, B).view({D, 4 * G, B}), uh.dense, h);
      z.clamp_min_(0.0f);
    }
    // gates = w_b + W z
    if (ww.csr) {
      csr_rows(ww.view(), 0, D * 4 * H, zp, B, bp, B, 1, gp, false);
    } else {
      at::Tensor g3 = gates.view({D * 4, H, B});
      at::baddbmm_out(g3, bias_rows.view({D * 4, H, B}), ww.dense, z.view({D * 4, G, B}));
    }
    cell_rows(0, D * H, H, B, gp, cp, hp, op + t * D * n);
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("hlstm_loop", &hlstm_loop, "H-LSTM time loop of one layer, D directions (transposed layout)");
}
