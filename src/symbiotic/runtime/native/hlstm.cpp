// One H-LSTM layer, compiled: one call runs the input product and every step of the time loop,
// for D stacked directions (1: a language-model layer; 2: a bidirectional speech layer).
//
// Layout (as runtime/layers.py): products are W @ X on transposed activations, so the state
// h is (D*H, B) with the batch contiguous, and a CSR row times the state is a B-wide
// multiply-add per nonzero (one AVX-512 vector for B = 16). Per step:
//   z = relu(u_b + U_x x_t + U_h h)  (D*4G, B)
//   gates = w_b + W z                 (D*4H, B), W dense per gate (D*4, H, G) or block-diagonal CSR
//   f, i, o = sigmoid, g = tanh, c = f*c + i*g, h = o*tanh(c)
// The input half u_b + U_x x_t does not depend on h. With a dense U_x it is one GEMM for all
// steps before the loop (Precomputed); with a CSR U_x it runs inside the loop as one more CSR
// term of z's rows (Fused): MKL's CSR product on the CPU took ~4x longer per nonzero than these
// rows, plus a copy of its transposed operand (AN4's final layers, measured on this CPU).
// A backward direction reads each batch column's frames in its own order (``order``: the
// reversal of each utterance's valid frames), and the outputs return in frame order, the
// directions summed, as (T, B, H): the layout the next layer and the decoder read. The
// per-step products are this file's own rows in every format (dense U_h and W as packed
// row panels, Panel), so that every format combination runs in one parallel region: the
// ATen GEMM per step that dense ones took before cost its dispatch twice a step and ran
// outside that region (PTB's final layer, dense W: 4.15 -> 2.75 ms at 2 threads). Nothing
// is allocated inside the loop. The gate nonlinearities are vectorised: AVX-512 intrinsics
// where the CPU has them (cell_span), else plain loops over glibc's vector expf.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <immintrin.h>
#include <math.h>

#include <cstdint>

namespace {

// expf in these loops is glibc's vector variant (libmvec, 16 floats per call with AVX-512):
// the build passes -ffast-math, under which <math.h> declares it. A scalar expf per element
// would cost more than all the products of a step.
inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

inline float tanh_fast(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

struct Csr {
  const int32_t* crow;
  const int32_t* col;
  const float* val;
};

// One CSR term of a product: rows of a matrix times x (K, B), B-wide vectors per column index.
struct Term {
  Csr m;
  const float* x;
};

// Where a product's rows start: init + r * ld (B values, contiguous) if init, else bias[r] in
// every column.
struct Start {
  const float* init;
  int64_t ld;
  const float* bias;
};

// A dense matrix of the loop, (blocks, per, K): block b's rows multiply x + b*K*B (the four
// gates of w, the directions of u_h). Rows go in groups of kGroup; ``panel`` holds each group's
// kGroup weights of a column side by side (zero past a block's last row), so that a group's
// broadcasts read one stream, and each column's B-wide vector of x is loaded once per group.
constexpr int64_t kGroup = 8;

struct Dense {
  const float* rows = nullptr;  // (blocks, per, K) row-major: the generic batch width's path
  const float* panel = nullptr;
  int64_t per = 0, K = 0, groups = 0;  // groups per block
};

struct Panel {
  std::vector<float> data;
  Dense view;

  explicit Panel(const at::Tensor& w3) {  // (blocks, per, K), contiguous
    const int64_t blocks = w3.size(0), per = w3.size(1), K = w3.size(2);
    const int64_t groups = (per + kGroup - 1) / kGroup;
    data.assign(blocks * groups * K * kGroup, 0.0f);
    const float* src = w3.data_ptr<float>();
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t r = 0; r < per; ++r)
        for (int64_t k = 0; k < K; ++k)
          data[((b * groups + r / kGroup) * K + k) * kGroup + r % kGroup] = src[(b * per + r) * K + k];
    view = {src, data.data(), per, K, groups};
  }
};

// One product's rows in block ``blk`` (local rows [r0, r0 + n), n <= kGroup): start + the CSR
// terms (their crow already shifted to the block) + the dense block times x, through ReLU if
// ``relu``, into out (local rows, B wide).
struct Rows {
  const Term* terms;
  int n_terms;
  const Dense* dense;  // or nullptr
  const float* x;      // the dense block's input, block 0
  Start s;
  bool relu;
};

template <int64_t BW>
void rows_of(const Rows& p, int64_t blk, int64_t r0, int64_t n, int64_t B_, float* __restrict out) {
  const int64_t B = BW > 0 ? BW : B_;
  for (int64_t r = r0; r < r0 + n; ++r) {
    float* dst = out + r * B;
    for (int64_t b = 0; b < B; ++b) dst[b] = p.s.init ? p.s.init[r * p.s.ld + b] : p.s.bias[r];
    for (int k = 0; k < p.n_terms; ++k) {
      const Csr& a = p.terms[k].m;
      for (int32_t j = a.crow[r]; j < a.crow[r + 1]; ++j) {
        const float v = a.val[j];
        const float* __restrict xr = p.terms[k].x + a.col[j];
#pragma omp simd
        for (int64_t b = 0; b < B; ++b) dst[b] += v * xr[b];
      }
    }
    if (p.dense) {
      const Dense& d = *p.dense;
      const float* w = d.rows + (blk * d.per + r) * d.K;
      const float* x = p.x + blk * d.K * B;
      for (int64_t k = 0; k < d.K; ++k) {
        const float v = w[k];
#pragma omp simd
        for (int64_t b = 0; b < B; ++b) dst[b] += v * x[k * B + b];
      }
    }
    if (p.relu) for (int64_t b = 0; b < B; ++b) dst[b] = dst[b] < 0.0f ? 0.0f : dst[b];
  }
}

#ifdef __AVX512F__
// Batch 16 (the profile's and the flow's inference batch) is exactly one AVX-512 register:
// a row's accumulator stays in it, each nonzero is one broadcast-FMA; a dense block runs its
// group's kGroup rows together, kGroup independent accumulators over one load of x per column.
void rows16(const Rows& p, int64_t blk, int64_t r0, int64_t n, float* __restrict out) {
  __m512 acc[kGroup];
  for (int64_t i = 0; i < kGroup; ++i) {
    const int64_t r = r0 + i;
    if (i >= n) {
      acc[i] = _mm512_setzero_ps();
      continue;
    }
    // four partial sums: one accumulator is a chain of dependent FMAs (4 cycles each), and at
    // 80-90% sparsity a row still has tens of nonzeros (PTB's final shape, all CSR: 4.02 ->
    // 3.38 ms at 1 thread); the row's start joins at the end, so that its load (pre's rows lie
    // far apart) overlaps the products
    __m512 a = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int k = 0; k < p.n_terms; ++k) {
      const Csr& m = p.terms[k].m;
      const float* __restrict x = p.terms[k].x;
      const int32_t* __restrict col = m.col;
      const float* __restrict val = m.val;
      int32_t j = m.crow[r];
      const int32_t e = m.crow[r + 1];
      for (; j + 4 <= e; j += 4) {
        a = _mm512_fmadd_ps(_mm512_set1_ps(val[j]), _mm512_loadu_ps(x + col[j]), a);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(val[j + 1]), _mm512_loadu_ps(x + col[j + 1]), a1);
        a2 = _mm512_fmadd_ps(_mm512_set1_ps(val[j + 2]), _mm512_loadu_ps(x + col[j + 2]), a2);
        a3 = _mm512_fmadd_ps(_mm512_set1_ps(val[j + 3]), _mm512_loadu_ps(x + col[j + 3]), a3);
      }
      for (; j < e; ++j) {
        a = _mm512_fmadd_ps(_mm512_set1_ps(val[j]), _mm512_loadu_ps(x + col[j]), a);
      }
    }
    __m512 s0;
    if (p.s.init) {
      const float* start = p.s.init + r * p.s.ld;
      // the same row's next step: too many streams for the hardware prefetcher (10% of AN4's
      // loop, measured)
      _mm_prefetch(reinterpret_cast<const char*>(start + 16), _MM_HINT_T1);
      s0 = _mm512_loadu_ps(start);
    } else {
      s0 = _mm512_set1_ps(p.s.bias[r]);
    }
    acc[i] = _mm512_add_ps(_mm512_add_ps(a, a1), _mm512_add_ps(a2, _mm512_add_ps(a3, s0)));
  }
  if (p.dense) {
    const Dense& d = *p.dense;
    const float* __restrict w = d.panel + (blk * d.groups + r0 / kGroup) * d.K * kGroup;
    const float* __restrict x = p.x + blk * d.K * 16;
    for (int64_t k = 0; k < d.K; ++k) {
      const __m512 xv = _mm512_loadu_ps(x + k * 16);
#pragma GCC unroll 8
      for (int64_t i = 0; i < kGroup; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(w[k * kGroup + i]), xv, acc[i]);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    _mm512_storeu_ps(out + (r0 + i) * 16, p.relu ? _mm512_max_ps(acc[i], _mm512_setzero_ps()) : acc[i]);
  }
}
#endif

// Rows [r0, r0 + n) of block ``blk`` (n <= kGroup; r0 a multiple of kGroup where dense).
void rows(const Rows& p, int64_t blk, int64_t r0, int64_t n, int64_t B, float* out) {
#ifdef __AVX512F__
  if (B == 16) return rows16(p, blk, r0, n, out);
#endif
  switch (B) {
    case 8: return rows_of<8>(p, blk, r0, n, B, out);
    case 16: return rows_of<16>(p, blk, r0, n, B, out);
    case 32: return rows_of<32>(p, blk, r0, n, B, out);
    default: return rows_of<0>(p, blk, r0, n, B, out);
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

// A matrix of one product, dense (a strided 2-D or 3-D tensor) or CSR with int32 indices.
struct Matrix {
  bool csr;
  at::Tensor dense;
  at::Tensor crow, col, val;

  // CSR column indices are stored as offsets into x (index * B, the batch vector's start), so
  // that a nonzero's load needs no multiply.
  static Matrix from(const at::Tensor& t, int64_t B) {
    Matrix m;
    m.csr = t.layout() == at::kSparseCsr;
    if (m.csr) {
      m.crow = t.crow_indices().to(at::kInt).contiguous();
      m.col = (t.col_indices().to(at::kLong) * B).to(at::kInt).contiguous();
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

// Memory that outlives a call, per calling thread, grown as needed and never shrunk: the loop's
// large buffers (outputs in step order, the reordered inputs) were fresh pages on every call,
// and their page faults took ~6% of AN4's recurrent time (perf, this CPU).
enum Slot { kSteps, kInputs, kSlots };

float* scratch(Slot slot, int64_t n) {
  thread_local std::vector<float> slots[kSlots];
  std::vector<float>& v = slots[slot];
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  return v.data();
}

// The frame each step of each direction reads, per batch column: t forward; order[t, b]
// backward (absent: t). ``back`` inverts it (the step that read frame t), so that outputs
// return to frame order.
struct Frames {
  int64_t D, T, B;
  bool reordered;
  std::vector<int32_t> frame, back;  // (D, T, B), (T, B)

  Frames(int64_t D_, int64_t T_, int64_t B_, const at::Tensor& order)
      : D(D_), T(T_), B(B_), reordered(order.numel() > 0), frame(D_ * T_ * B_), back(T_ * B_, -1) {
    TORCH_CHECK(!reordered || (D == 2 && order.dim() == 2 && order.size(0) == T && order.size(1) == B),
                "order must be (T, B), for two directions");
    const at::Tensor ord = reordered ? order.to(at::kLong).contiguous() : at::Tensor();
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t i = 0; i < T * B; ++i) {
        const int64_t f = d == 1 && reordered ? ord.data_ptr<int64_t>()[i] : i / B;
        TORCH_CHECK(0 <= f && f < T, "order holds a step outside [0, T)");
        frame[d * T * B + i] = static_cast<int32_t>(f);
      }
    }
    if (D == 2) {
      for (int64_t i = 0; i < T * B; ++i) {
        int32_t& slot = back[frame[T * B + i] * B + i % B];
        TORCH_CHECK(slot < 0, "order must be a permutation of the steps of each column");
        slot = static_cast<int32_t>(i / B);
      }
    }
  }

  int32_t at(int64_t d, int64_t t, int64_t b) const { return frame[(d * T + t) * B + b]; }

  // y (B, H) of frame t = the sum over directions of their outputs for it; out (T, D, H, B) in
  // step order (the layout the loop writes), y (T, B, H).
  void combine(const float* out, int64_t t, int64_t H, float* y) const {
    for (int64_t b = 0; b < B; ++b) {
      float* yb = y + (t * B + b) * H;
      const float* o[2];
      for (int64_t d = 0; d < D; ++d) o[d] = out + ((d == 1 ? back[t * B + b] : t) * D + d) * H * B + b;
#ifdef __AVX512F__
      // 16 units at a time: a gather down each direction's column (stride B), one store
      const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_set1_epi32(static_cast<int32_t>(B)));
      for (int64_t q = 0; q < H; q += 16) {
        const __mmask16 live = H - q >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (H - q)) - 1);
        __m512 sum = _mm512_setzero_ps();
        for (int64_t d = 0; d < D; ++d) {
          sum = _mm512_add_ps(sum, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, rows, o[d] + q * B, 4));
        }
        _mm512_mask_storeu_ps(yb + q, live, sum);
      }
#else
      for (int64_t q = 0; q < H; ++q) yb[q] = o[0][q * B] + (D == 2 ? o[1][q * B] : 0.0f);
#endif
    }
  }
};

// The input half of z's rows, per direction and step: rows (R/D each) and what starts them.
struct InputHalf {
  virtual ~InputHalf() = default;
  // The start of direction d's rows at step t, and the CSR terms before U_h's (none or U_x's).
  virtual Start start(int64_t d, int64_t t) const = 0;
  virtual int terms(int64_t d, int64_t t, Term* out) const = 0;
};

// Dense U_x: pre = u_b + U_x X for every frame by one GEMM, (R, T*B), column t*B + b. The
// backward rows, read in their order, are gathered once into a copy, row by row (each gather
// stays inside one row of pre, in cache); gathering per step inside the loop instead reads B
// far-apart frames per row and made the loop 1.8x slower at AN4's shapes (measured).
struct Precomputed : InputHalf {
  int64_t T, B, per;
  at::Tensor pre;
  const float* base[2];

  Precomputed(const at::Tensor& x, const at::Tensor& u_x, const at::Tensor& u_b, const Frames& frames)
      : T(x.size(0)), B(x.size(1)), per(u_x.size(0) / frames.D) {
    pre = at::addmm(u_b.unsqueeze(1), u_x, x.reshape({T * B, x.size(2)}).t());  // (R, T*B), contiguous
    const float* p = pre.data_ptr<float>();
    base[0] = p;
    base[1] = p + per * T * B;  // read in place when both directions read frame t
    if (frames.reordered) {
      float* cp = scratch(kInputs, per * T * B);
      std::vector<int64_t> from(T * B);  // source column of column i
      for (int64_t i = 0; i < T * B; ++i) from[i] = frames.at(1, i / B, i % B) * B + i % B;
      at::parallel_for(0, per, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const float* __restrict src = p + (per + r) * T * B;
          float* __restrict dst = cp + r * T * B;
#pragma omp simd
          for (int64_t i = 0; i < T * B; ++i) dst[i] = src[from[i]];
        }
      });
      base[1] = cp;
    }
  }

  Start start(int64_t d, int64_t t) const override { return {base[d] + t * B, T * B, nullptr}; }
  int terms(int64_t, int64_t, Term*) const override { return 0; }
};

// CSR U_x: its rows are one more term of z's rows inside the loop, on the step's inputs laid out
// as the state is, xs (D, T, I, B): each direction's frames in its order, made once before the loop.
struct Fused : InputHalf {
  int64_t T, B, I, per;
  const float* bias;
  Csr u_x;
  const float* xs;

  Fused(const at::Tensor& x, const Csr& u_x_, const float* u_b, int64_t R, const Frames& frames)
      : T(x.size(0)), B(x.size(1)), I(x.size(2)), per(R / frames.D), bias(u_b), u_x(u_x_) {
    const at::Tensor xc = x.contiguous();
    const float* xp = xc.data_ptr<float>();
    float* out = scratch(kInputs, frames.D * T * I * B);
    xs = out;
    at::parallel_for(0, frames.D * T, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t dt = lo; dt < hi; ++dt) {
        const int64_t d = dt / T, t = dt % T;
        for (int64_t b = 0; b < B; ++b) {
          const float* src = xp + (frames.at(d, t, b) * B + b) * I;
          for (int64_t i = 0; i < I; ++i) out[(dt * I + i) * B + b] = src[i];
        }
      }
    });
  }

  Start start(int64_t, int64_t) const override { return {nullptr, 0, bias}; }
  int terms(int64_t d, int64_t t, Term* out) const override {
    out[0] = {u_x, xs + (d * T + t) * I * B};
    return 1;
  }
};

// One product of a step: ``blocks`` blocks of ``per`` rows (z: the directions, 4G rows each;
// the gates: D*4 blocks of H), run by work units of kGroup rows that never cross a block, so
// that a thread's share is a range of units.
struct Product {
  int64_t blocks, per;
  int64_t groups() const { return (per + kGroup - 1) / kGroup; }
  int64_t units() const { return blocks * groups(); }
};

// z = relu(input half + U_h h) for units [lo, hi) at step t: U_h CSR (u_h) or dense (panel).
void z_units(const InputHalf& in, const Csr* u_h, const Dense* panel, const Product& p, int64_t lo, int64_t hi,
             const float* h, int64_t B, int64_t t, float* z) {
  for (int64_t u = lo; u < hi; ++u) {
    const int64_t d = u / p.groups(), r0 = (u % p.groups()) * kGroup;
    Term terms[2];
    int n = in.terms(d, t, terms);
    if (u_h) terms[n++] = {*u_h, h};
    for (int k = 0; k < n; ++k) terms[k].m.crow += d * p.per;
    Start s = in.start(d, t);
    if (s.bias) s.bias += d * p.per;
    const Rows rows_d{terms, n, panel, h, s, true};
    rows(rows_d, d, r0, std::min(kGroup, p.per - r0), B, z + d * p.per * B);
  }
}

// gates = w_b + W z for units [lo, hi) of the D*4 gate blocks: W CSR (block-diagonal, w) or
// dense per gate (panel). Cells are updated after a barrier rather than by the thread that
// computed their gates: that fusion saved a barrier a step but made each thread read all of z
// instead of the half it wrote, and was slower at 2 threads (PTB's final shape, 2.23 against
// 1.84 ms, measured side by side).
void gate_units(const Csr* w, const Dense* panel, const Product& p, int64_t lo, int64_t hi, const float* bias_rows,
                const float* z, int64_t B, float* gates) {
  for (int64_t u = lo; u < hi; ++u) {
    const int64_t q = u / p.groups(), r0 = (u % p.groups()) * kGroup;
    Term term{w ? *w : Csr{}, z};
    term.m.crow += w ? q * p.per : 0;
    const Rows rows_q{&term, w ? 1 : 0, panel, z, {bias_rows + q * p.per * B, B, nullptr}, false};
    rows(rows_q, q, r0, std::min(kGroup, p.per - r0), B, gates + q * p.per * B);
  }
}
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

}  // namespace

// One layer of D directions from zero state: x (T, B, I) (any strides), order (T, B) int64 or
// empty (see Frames), u_x (D*4G, I) dense or CSR, u_b (D*4G,), u_h dense (D, 4G, H) or CSR
// (D*4G, D*H) block-diagonal, w dense (D*4, H, G) or CSR (D*4H, D*4G) block-diagonal, w_b
// (D*4, H). Returns (T, B, H): frame order, the directions summed.
at::Tensor hlstm_layer(const at::Tensor& x, const at::Tensor& order, const at::Tensor& u_x, const at::Tensor& u_b,
                       const at::Tensor& u_h, const at::Tensor& w, const at::Tensor& w_b) {
  const std::pair<const at::Tensor*, const char*> args[] = {{&x, "x"}, {&u_x, "u_x"}, {&u_b, "u_b"},
                                                              {&u_h, "u_h"}, {&w, "w"}, {&w_b, "w_b"}};
  for (const auto& [t, name] : args) check_float(*t, name);
  TORCH_CHECK(x.dim() == 3, "x must be (T, B, I)");
  const Matrix ux = Matrix::from(u_x, x.size(1)), uh = Matrix::from(u_h, x.size(1)), ww = Matrix::from(w, x.size(1));
  const at::Tensor bias = w_b.contiguous(), ub = u_b.contiguous();
  TORCH_CHECK(x.dim() == 3 && bias.dim() == 2, "x must be (T, B, I) and w_b (D*4, H)");
  const int64_t T = x.size(0), B = x.size(1), H = bias.size(1), D = bias.size(0) / 4;
  const int64_t R = ub.numel(), G = R / (4 * D), per = R / D;  // R = D*4G
  TORCH_CHECK(ux.rows() == R && (ux.csr ? true : ux.dense.size(1) == x.size(2)), "u_x has the wrong shape");
  TORCH_CHECK(uh.csr ? uh.rows() == R : (uh.dense.dim() == 3 && uh.dense.size(0) == D), "u_h has the wrong shape");
  TORCH_CHECK(ww.csr ? ww.rows() == D * 4 * H : ww.dense.size(0) == D * 4, "w has the wrong shape");

  auto opts = x.options();
  at::Tensor y = at::empty({T, B, H}, opts);
  if (T == 0 || B == 0) return y;
  const Frames frames(D, T, B, order);
  std::unique_ptr<InputHalf> in;
  if (ux.csr) {
    in = std::make_unique<Fused>(x, ux.view(), ub.data_ptr<float>(), R, frames);
  } else {
    in = std::make_unique<Precomputed>(x, ux.dense, ub, frames);
  }
  at::Tensor h = at::zeros({D, H, B}, opts), c = at::zeros({D, H, B}, opts);
  at::Tensor z = at::empty({R, B}, opts), gates = at::empty({D * 4 * H, B}, opts);
  at::Tensor bias_rows = bias.reshape({D * 4 * H, 1}).expand({D * 4 * H, B}).contiguous();  // w_b per column
  float* hp = h.data_ptr<float>();
  float* cp = c.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  float* gp = gates.data_ptr<float>();
  float* op = scratch(kSteps, T * D * H * B);  // (T, D, H, B): each step's outputs, step order
  float* yp = y.data_ptr<float>();
  const int64_t n = H * B;

  // Dense per-step matrices are packed once per call into kGroup-row panels (rows16).
  std::unique_ptr<Panel> uh_panel, w_panel;
  if (!uh.csr) uh_panel = std::make_unique<Panel>(uh.dense.reshape({D, 4 * G, H}).contiguous());
  if (!ww.csr) w_panel = std::make_unique<Panel>(ww.dense.reshape({D * 4, H, G}).contiguous());
  const Csr uh_csr = uh.csr ? uh.view() : Csr{}, w_csr = ww.csr ? ww.view() : Csr{};
  const Csr* uh_m = uh.csr ? &uh_csr : nullptr;
  const Csr* w_m = ww.csr ? &w_csr : nullptr;
  const Dense* uh_d = uh.csr ? nullptr : &uh_panel->view;
  const Dense* w_d = ww.csr ? nullptr : &w_panel->view;
  const Product z_rows{D, 4 * G};
  const Product g_rows{D * 4, H};
  const float* brp = bias_rows.data_ptr<float>();
  // One parallel region for the whole loop, three barriers a step, whatever the formats: forking
  // per product (at::parallel_for, or an ATen GEMM per step) cost more than a second thread saved.
#pragma omp parallel num_threads(std::max(1, at::get_num_threads()))
  {
    const int64_t id = omp_get_thread_num(), nt = omp_get_num_threads();
    auto lo = [&](int64_t total) { return total * id / nt; };
    auto hi = [&](int64_t total) { return total * (id + 1) / nt; };
    for (int64_t t = 0; t < T; ++t) {
      z_units(*in, uh_m, uh_d, z_rows, lo(z_rows.units()), hi(z_rows.units()), hp, B, t, zp);
#pragma omp barrier
      gate_units(w_m, w_d, g_rows, lo(g_rows.units()), hi(g_rows.units()), brp, zp, B, gp);
#pragma omp barrier
      cell_rows(lo(D * H), hi(D * H), H, B, gp, cp, hp, op + t * D * n);
#pragma omp barrier
    }
    for (int64_t t = lo(T); t < hi(T); ++t) frames.combine(op, t, H, yp);
  }
  return y;
}

at::Tensor csr_mm(const at::Tensor& a, const at::Tensor& x, const at::Tensor& bias);  // csr_mm.cpp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("hlstm_layer", &hlstm_layer, "one H-LSTM layer of D directions: input product and time loop");
  m.def("csr_mm", &csr_mm, "bias + CSR a (V, K) @ x (K, N): the decoder's product");
}
