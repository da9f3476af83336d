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
// The nonlinearities are plain loops that the compiler vectorises (see sigmoid below).

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>

#include <math.h>

#include <cstdint>
#include <vector>

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
    for (int64_t b = 0; b < B; ++b) dst[b] = start[b * init_step];
    for (int32_t j = a.crow[r]; j < a.crow[r + 1]; ++j) {
      const float v = a.val[j];
      const float* __restrict xr = x + static_cast<int64_t>(a.col[j]) * B;
#pragma omp simd
      for (int64_t b = 0; b < B; ++b) dst[b] += v * xr[b];
    }
    for (int64_t b = 0; b < B; ++b) out[r * B + b] = relu && dst[b] < 0.0f ? 0.0f : dst[b];
  }
}

void csr_rows(const Csr& a, int64_t lo, int64_t hi, const float* x, int64_t B, const float* init, int64_t init_ld,
              int64_t init_step, float* out, bool relu) {
  switch (B) {
    case 8: return csr_rows_of<8>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
    case 16: return csr_rows_of<16>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
    case 32: return csr_rows_of<32>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
    default: return csr_rows_of<0>(a, lo, hi, x, B, init, init_ld, init_step, out, relu);
  }
}

// The cell update of state rows [lo, hi) of D*H (row q: direction q / H, unit q % H), B wide:
// gate rows f, i, o, g of each direction; c = f*c + i*g, h = o*tanh(c), h also into out_t.
void cell_rows(int64_t lo, int64_t hi, int64_t H, int64_t B, const float* gates, float* c, float* h, float* out_t) {
  const int64_t n = H * B;
  for (int64_t q = lo; q < hi; ++q) {
    const float* f = gates + ((q / H) * 4 * H + q % H) * B;
    const float* i = f + n;
    const float* o = f + 2 * n;
    const float* g = f + 3 * n;
    float* cq = c + q * B;
    float* hq = h + q * B;
    float* oq = out_t + q * B;
#pragma omp simd
    for (int64_t b = 0; b < B; ++b) {
      const float ck = sigmoid(f[b]) * cq[b] + sigmoid(i[b]) * tanh_fast(g[b]);
      cq[b] = ck;
      hq[b] = sigmoid(o[b]) * tanh_fast(ck);
      oq[b] = hq[b];
    }
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
