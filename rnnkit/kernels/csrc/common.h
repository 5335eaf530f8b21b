// rnnkit fused kernels: the pieces the three families share (BLAS calls, packed recurrent
// weights, activations, the parallel pointwise loop).
//
// Shape contracts, for every kernel in this folder (time-major, one layer, one direction):
//   T steps, N batch, I input size, H hidden size, P output size (= H, or proj_size for a
//   projected LSTM), G = gates * H (LSTM 4H: input, forget, cell, output; GRU 3H: reset,
//   update, new; RNN H).
//   x          [T, N, I]      contiguous
//   weight_ih  [G, I]         weight_hh [G, P]      bias [G]      weight_hr [P, H]
//   mask       [T, N, 1]      0/1 in x's dtype, or undefined (every sequence runs T steps);
//                             at mask 0 a sequence's state is held and its output is zero
//   hiddens    [T + 1, N, P]  h_0 .. h_T, saved for backward (h_{t-1} feeds dW_hh)
//   cells      [T + 1, N, H]  c_0 .. c_T (LSTM), saved for backward
//   gates      [T, N, G]      post-activation gates, saved for backward; during the forward
//                             the same buffer first holds the input projection of every step
//   hidden_new [T, N, H]      GRU only: W_hn h_{t-1} + b_hn, which the reset gate multiplies
// Backward returns the gradients of the forward's differentiable inputs, plus, when asked,
// dL/dh_t [T, N, P] and dL/dc_t [T, N, H] for every step (zero where the mask is 0).
//
// Every buffer is allocated once per call; the time loop only runs one recurrent GEMM into a
// preallocated slice and one fused pointwise pass per step.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "bf16.h"

namespace rnnkit {

using at::Tensor;
using OptionalTensor = std::optional<Tensor>;

// ---- scratch memory ----------------------------------------------------------------------------
// Temporaries kept per thread for the next call: a fresh allocation of a few MiB costs a page
// fault per 4 KiB on every call (at batch 8, hidden 128, T 100 about as much as the layer-norm
// passes themselves). Above kScratchMaxBytes a call allocates as before, so a one-off huge
// sequence does not pin its memory. What is handed out must not outlive the call (nothing
// returned aliases it), and a slot serves one temporary at a time:
enum ScratchSlot : int {
  kScratchGates = 0,        // a backward's dL/d(gates) [T, N, G] (and two more of that kind)
  kScratchGates2 = 1,
  kScratchGates3 = 2,
  kScratchRows = 3,         // gradient_rows: dL/d(gates) transposed for the weight gradients
  kScratchRows2 = 4,
  kScratchPackedB = 5,      // matmul_into's packed right operand
  kScratchRecurrent = 6,    // UnitColumnsGemm's packed columns, on each thread of a team
  kScratchSlots = 7
};
constexpr int64_t kScratchMaxBytes = int64_t(64) << 20;

// 64-byte aligned memory of at least `bytes` in this thread's `slot`, or nullptr above the cap.
inline void* scratch_bytes(int slot, int64_t bytes) {
  if (bytes > kScratchMaxBytes) return nullptr;
  thread_local std::unique_ptr<uint8_t[]> buffers[kScratchSlots];
  thread_local int64_t capacity[kScratchSlots] = {};
  if (capacity[slot] < bytes) {
    buffers[slot].reset(new uint8_t[size_t(bytes) + 64]);
    capacity[slot] = bytes;
  }
  const auto address = reinterpret_cast<uintptr_t>(buffers[slot].get());
  return reinterpret_cast<void*>((address + 63) & ~uintptr_t(63));
}

inline Tensor scratch(int slot, at::IntArrayRef shape, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (const int64_t size : shape) numel *= size;
  void* memory = scratch_bytes(slot, numel * int64_t(options.dtype().itemsize()));
  return memory == nullptr ? at::empty(shape, options) : at::from_blob(memory, shape, options);
}

// ---- BLAS -------------------------------------------------------------------------------------
// torch's x86 wheels carry MKL and export its BLAS symbols; the loader defines RNNKIT_WITH_MKL
// when it finds them. Then the per-step GEMMs call MKL directly (no dispatcher, no tensor
// objects per step) and the recurrent weight is packed once per sequence (cblas_sgemm_pack).
// Without MKL the same calls go through at::addmm_out on views of the preallocated buffers.

#ifdef RNNKIT_WITH_MKL
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest);
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c,
                         int ldc);
void cblas_gemm_bf16bf16f32(int layout, int transa, int transb, int m, int n, int k,
                            float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb,
                            float beta, float* c, int ldc);
}
enum CblasValue : int {
  kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162
};
#endif

// Row-major C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C.
template <typename scalar_t>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, scalar_t alpha,
          const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, scalar_t beta,
          scalar_t* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
#ifdef RNNKIT_WITH_MKL
  // column-major BLAS computes C^T = op(B)^T op(A)^T
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  const int mi = int(m), ni = int(n), ki = int(k), la = int(lda), lb = int(ldb), lc = int(ldc);
  if constexpr (std::is_same_v<scalar_t, float>) {
    sgemm_(&tb, &ta, &ni, &mi, &ki, &alpha, b, &lb, a, &la, &beta, c, &lc);
  } else {
    dgemm_(&tb, &ta, &ni, &mi, &ki, &alpha, b, &lb, a, &la, &beta, c, &lc);
  }
#else
  auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value);
  auto view = [&](const scalar_t* p, int64_t rows, int64_t cols, int64_t ld, bool trans) {
    auto t = at::from_blob(const_cast<scalar_t*>(p), {trans ? cols : rows, trans ? rows : cols},
                           {ld, 1}, options);
    return trans ? t.t() : t;
  };
  auto out = at::from_blob(c, {m, n}, {ldc, 1}, options);
  auto left = view(a, m, k, lda, trans_a), right = view(b, k, n, ldb, trans_b);
  if (beta == scalar_t(0)) {
    at::mm_out(out, left, right);
    if (alpha != scalar_t(1)) out.mul_(alpha);
  } else {
    at::addmm_out(out, out, left, right, beta, alpha);
  }
#endif
}

// C[m, n] (+)= A[m, k] @ op(B) with the same B for every step of a sequence, B prepared once.
// float: op(B) is cut into column blocks of kBlock, each stored contiguous [k, block], and every
// step runs oneDNN's JIT batch-reduce GEMM (at::native::cpublas::brgemm, the microkernel behind
// oneDNN's own RNN) on the blocks, spread over the cores. At a step's sizes (m = batch <= 64)
// it measured 1.4-3.6x MKL's packed sgemm on this project's machine (an AMD EPYC, where MKL
// takes its generic path). RNNKIT_GEMM=mkl keeps MKL's packed sgemm (cblas_sgemm_pack), the
// path before; double always runs the plain BLAS call.
// kBf16: the calling thread is in bf16 mode (bf16.h): the operands rounded to bf16, float32 sums.
enum class GemmEngine { kBrgemm, kFewRows, kMklPacked, kPlain, kBf16 };

inline GemmEngine float_engine() {
#if defined(CPUBLAS_BRGEMM_F32F32F32)
  const char* choice = std::getenv("RNNKIT_GEMM");
  if (choice == nullptr || std::strcmp(choice, "mkl") != 0) return GemmEngine::kBrgemm;
#endif
#ifdef RNNKIT_WITH_MKL
  return GemmEngine::kMklPacked;
#else
  return GemmEngine::kPlain;
#endif
}

// Column-block width for the brgemm engine: narrower blocks when there would be fewer blocks
// than cores.
inline int64_t column_block(int64_t n) { return n >= 2 * 64 * at::get_num_threads() ? 64 : 32; }

// B[k, n] (any strides) into column blocks of `block`, block j stored contiguous [k, width] at
// out + j * block * k: the layout every brgemm call below reads with ld_b = width (pack_block:
// one such block, columns [begin, begin + width)). When B is
// stored transposed (stride_n != 1, as W_hh for the forward's h @ W_hh^T), rows are taken 16 at
// a time so each column's 16 values are one cache line read and the 16 rows written stay in L1
// (a plain strided loop read a whole line per value: 4H x H lines per call).
inline void pack_block(const float* b, int64_t stride_k, int64_t stride_n, int64_t k,
                       int64_t begin, int64_t width, float* dest) {
  constexpr int64_t kTile = 16;
  if (stride_n == 1) {
    for (int64_t row = 0; row < k; ++row)
      std::memcpy(dest + row * width, b + row * stride_k + begin, sizeof(float) * width);
    return;
  }
  for (int64_t row0 = 0; row0 < k; row0 += kTile) {
    const int64_t rows = std::min(kTile, k - row0);
    for (int64_t col = 0; col < width; ++col) {
      const float* source = b + row0 * stride_k + (begin + col) * stride_n;
      for (int64_t row = 0; row < rows; ++row)
        dest[(row0 + row) * width + col] = source[row * stride_k];
    }
  }
}

inline void pack_column_blocks(const float* b, int64_t stride_k, int64_t stride_n, int64_t k,
                               int64_t n, int64_t block, float* out) {
  at::parallel_for(0, (n + block - 1) / block, 1, [&](int64_t first, int64_t last) {
    for (int64_t j = first; j < last; ++j) {
      const int64_t begin = j * block;
      pack_block(b, stride_k, stride_n, k, begin, std::min(block, n - begin), out + begin * k);
    }
  });
}

// C[m, n] (+)= A[m, k] @ B^T with B [n, k] row-major, for m <= kMaxFewRows: each output is a dot
// product of two contiguous rows, so B is read where it lies (a batch of one is bound by reading
// W_hh once per step; packing it first cost more than the steps). Four columns at a time, for
// four independent accumulator chains; columns spread over the cores when worth it.
constexpr int64_t kMaxFewRows = 1;
// ... and only for weights of at least this many elements (512 KiB of float): below it packing
// them costs less than the strided reads it saves (batch 1, hidden 64: forward 0.89x torch.nn
// without packing, 1.08x with)
constexpr int64_t kFewRowsMinElements = int64_t(128) << 10;

inline bool few_rows(int64_t m, int64_t weight_elements) {
  return m <= kMaxFewRows && weight_elements >= kFewRowsMinElements;
}

// (float for the GEMMs below; the streaming step also takes it in double)
template <typename scalar_t>
inline void few_rows_times_transposed(int64_t m, int64_t n, int64_t k, const scalar_t* a,
                                      int64_t lda, const scalar_t* b, int64_t ldb, bool add,
                                      scalar_t* c, int64_t ldc, bool parallel) {
  auto columns = [&](int64_t first, int64_t last) {
    int64_t col = first;
    for (; col + 4 <= last; col += 4) {  // the four rows of B stay in L1 across A's rows
      const scalar_t* __restrict__ b0 = b + col * ldb;
      const scalar_t* __restrict__ b1 = b0 + ldb;
      const scalar_t* __restrict__ b2 = b1 + ldb;
      const scalar_t* __restrict__ b3 = b2 + ldb;
      for (int64_t row = 0; row < m; ++row) {
        const scalar_t* __restrict__ x = a + row * lda;
        scalar_t* __restrict__ out = c + row * ldc + col;
        scalar_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        _Pragma("omp simd reduction(+ : s0, s1, s2, s3)")
        for (int64_t i = 0; i < k; ++i) {
          s0 += x[i] * b0[i];
          s1 += x[i] * b1[i];
          s2 += x[i] * b2[i];
          s3 += x[i] * b3[i];
        }
        out[0] = add ? out[0] + s0 : s0;
        out[1] = add ? out[1] + s1 : s1;
        out[2] = add ? out[2] + s2 : s2;
        out[3] = add ? out[3] + s3 : s3;
      }
    }
    for (; col < last; ++col) {
      const scalar_t* __restrict__ b0 = b + col * ldb;
      for (int64_t row = 0; row < m; ++row) {
        const scalar_t* __restrict__ x = a + row * lda;
        scalar_t s0 = 0;
        _Pragma("omp simd reduction(+ : s0)")
        for (int64_t i = 0; i < k; ++i) s0 += x[i] * b0[i];
        scalar_t& out = c[row * ldc + col];
        out = add ? out + s0 : s0;
      }
    }
  };
  if (parallel) {
    const int64_t groups = (n + 3) / 4, grain = 1 + 8192 / std::max<int64_t>(k, 1);
    at::parallel_for(0, groups, grain, [&](int64_t first, int64_t last) {
      columns(first * 4, std::min(last * 4, n));
    });
  } else {
    columns(0, n);
  }
}

// below this many multiply-adds a step's GEMM is faster on one core than waking the second
constexpr int64_t kParallelMacs = 32768;
// brgemm calls take K in chunks of this depth (see UnitColumnsGemm::run)
constexpr int64_t kDepthChunk = 1024;

template <typename scalar_t>
class RecurrentGemm {
 public:
  RecurrentGemm(int64_t m, int64_t n, int64_t k, const scalar_t* b, int64_t ldb, bool trans_b)
      : m_(m), n_(n), k_(k), b_(b), ldb_(ldb), trans_b_(trans_b) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    if constexpr (std::is_same_v<scalar_t, float>) {
      engine_ = float_engine();
      if (bf16::active()) {  // op(B) packed to bf16 panels, column blocks of 64 over the cores
        engine_ = GemmEngine::kBf16;
        blocks_ = (n + 63) / 64;
        parallel_ = m * n * k >= kParallelMacs && at::get_num_threads() > 1 && blocks_ > 1;
        packed16_.reset(new uint16_t[bf16::packed_elements(k, n)]);
        bf16::pack(b, trans_b ? 1 : ldb, trans_b ? ldb : 1, k, n, packed16_.get());
        return;
      }
#if defined(CPUBLAS_BRGEMM_F32F32F32)
      if (engine_ == GemmEngine::kBrgemm) {
        parallel_ = m * n * k >= kParallelMacs && at::get_num_threads() > 1;
        block_ = column_block(n);
        blocks_ = (n + block_ - 1) / block_;
        if (few_rows(m, n * k)) {  // read B where it lies: see few_rows_times_transposed
          if (trans_b) engine_ = GemmEngine::kFewRows;
          parallel_ = parallel_ && (trans_b || blocks_ > 1);
          return;
        }
        packed_.reset(new float[n * k + 16]);
        // op(B) = B^T reads B[col, row]: strides (1, ldb); B itself: (ldb, 1)
        pack_column_blocks(b, trans_b ? 1 : ldb, trans_b ? ldb : 1, k, n, block_, packed_.get());
        parallel_ = parallel_ && blocks_ > 1;
        return;
      }
#endif
#ifdef RNNKIT_WITH_MKL
      if (engine_ == GemmEngine::kMklPacked) {
        const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, int(m), int(n), int(k));
        packed_.reset(new float[bytes / sizeof(float) + 16]);
        cblas_sgemm_pack(kRowMajor, kBMatrix, trans_b ? kTrans : kNoTrans, int(m), int(n),
                         int(k), 1.0f, b, int(ldb), packed_.get());
      }
#endif
    }
  }

  // beta is 0 (overwrite C) or 1 (add to C).
  void run(const scalar_t* a, int64_t lda, scalar_t beta, scalar_t* c, int64_t ldc) const {
    if (m_ == 0 || n_ == 0) return;
    if (k_ == 0) {
      for (int64_t row = 0; row < m_; ++row)
        for (int64_t col = 0; col < n_; ++col) c[row * ldc + col] *= beta;
      return;
    }
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (engine_ == GemmEngine::kBf16) {
        const uint16_t* a16 = bf16::round_rows_scratch(a, lda, m_, k_);
        auto blocks = [&](int64_t first, int64_t last) {
          const int64_t begin = first * 64, end = std::min(n_, last * 64);
          bf16::gemm_packed(m_, end - begin, k_, a16, bf16::even(k_),
                            packed16_.get() + begin / bf16::kPanel * bf16::panel_elements(k_),
                            beta != 0.0f, c + begin, ldc);
        };
        if (parallel_) {
          at::parallel_for(0, blocks_, 1, blocks);
        } else {
          blocks(0, blocks_);
        }
        return;
      }
      if (engine_ == GemmEngine::kFewRows) {
        few_rows_times_transposed(m_, n_, k_, a, lda, b_, ldb_, beta != 0.0f, c, ldc, parallel_);
        return;
      }
#if defined(CPUBLAS_BRGEMM_F32F32F32)
      if (engine_ == GemmEngine::kBrgemm) {
        const bool add = beta != 0.0f;
        // few rows: B [k, n] as it lies (ld_b = ldb), one block per core; else the packed blocks
        const bool packed = packed_ != nullptr;
        auto blocks = [&](int64_t first, int64_t last) {
          for (int64_t depth = 0; depth < k_; depth += kDepthChunk) {
            const int64_t chunk = std::min(kDepthChunk, k_ - depth);
            for (int64_t j = first; j < last; ++j) {
              const int64_t begin = j * block_, width = std::min(block_, n_ - begin);
              const float* block = packed ? packed_.get() + begin * k_ + depth * width
                                          : b_ + depth * ldb_ + begin;
              at::native::cpublas::brgemm(m_, width, chunk, lda, packed ? width : ldb_, ldc,
                                          add || depth > 0, a + depth, block, c + begin, false);
            }
          }
        };
        if (parallel_) {
          at::parallel_for(0, blocks_, 1, blocks);
        } else {
          blocks(0, blocks_);
        }
        return;
      }
#endif
#ifdef RNNKIT_WITH_MKL
      if (engine_ == GemmEngine::kMklPacked) {
        cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, int(m_), int(n_), int(k_), a,
                            int(lda), packed_.get(), int(ldb_), beta, c, int(ldc));
        return;
      }
#endif
    }
    gemm<scalar_t>(false, trans_b_, m_, n_, k_, scalar_t(1), a, lda, b_, ldb_, beta, c, ldc);
  }

 private:
  int64_t m_, n_, k_;
  const scalar_t* b_;
  int64_t ldb_;
  bool trans_b_;
  GemmEngine engine_ = GemmEngine::kPlain;
  int64_t block_ = 64, blocks_ = 0;
  bool parallel_ = false;
  std::unique_ptr<float[]> packed_;
  std::unique_ptr<uint16_t[]> packed16_;  // kBf16: op(B) in bf16 panels
};

// ---- a team of threads over the whole time loop ------------------------------------------------
// Each thread owns a range of hidden units for the whole sequence: its columns of every gate in
// the forward's recurrent GEMM (h @ W_hh^T), the same units' columns of dL/dh in the backward's
// (dL/dgates @ W_hh), and those units' gate math. A step then needs one barrier (all of h_t, or
// all of dL/dgates, before the next GEMM) instead of a fork and join around the GEMM and
// another around the gate math, and the gates a thread's GEMM wrote are still in its cache.
inline void team_barrier() {
#pragma omp barrier
}

struct UnitRange {
  int64_t begin, end;
  int64_t index = 0, team = 1;  // this thread's place in the team
  // The batch rows this thread runs: all of them when the team splits the hidden units. With
  // enough rows the team splits the batch instead (on_unit_ranges with a batch): every thread
  // runs all units of its own sequences, which never read another thread's, so a step needs
  // no barrier at all (`independent`).
  int64_t row_begin = 0, row_end = 0;
  bool independent = false;

  // this thread's share of `rows` rows, for passes that need whole rows (layer norm)
  std::pair<int64_t, int64_t> rows(int64_t count) const {
    return {count * index / team, count * (index + 1) / team};
  }
  int64_t row_count() const { return row_end - row_begin; }
  // what a step of a unit-split team waits for: everyone's h_t (or dL/d(gates))
  void barrier() const {
    if (!independent) team_barrier();
  }
};

constexpr int64_t kUnitGroup = 16;  // ranges are cut at multiples of 16 units (one zmm of float)

// Threads for a time loop whose step does `macs` multiply-adds over `hidden` units: one when a
// step is too small to pay for the second, or when already inside a parallel region.
inline int team_size(int64_t macs, int64_t hidden) {
  const int threads = at::get_num_threads();
  if (threads <= 1 || macs < kParallelMacs || at::in_parallel_region()) return 1;
  return int(std::min<int64_t>(threads, (hidden + kUnitGroup - 1) / kUnitGroup));
}

// fn(range) on each thread of a team of `threads`; fn may call team_barrier(). Given the batch,
// a team splits it when each thread gets at least kMinRowsPerThread sequences, else it splits
// the hidden units. Measured, splitting the batch against splitting the units, T 100, 2 threads:
// batch 32-64, hidden 64-256: 1.11-1.70x (forward), 1.11-1.36x (forward+backward), all three
// families; hidden 1024: 1.00-1.03x. With 4 rows a thread (batch 8) it gained 0-18% up to
// hidden 256 but lost 5-31% at hidden 1024, where every thread streams all of W_hh for its rows.
constexpr int64_t kMinRowsPerThread = 16;

template <typename F>
inline void on_unit_ranges(int threads, int64_t hidden, const F& fn, int64_t batch) {
  if (threads <= 1) {
    fn(UnitRange{0, hidden, 0, 1, 0, batch, true});
    return;
  }
  const bool split_rows = batch >= kMinRowsPerThread * threads;
  const bool bf16_mode = bf16::active();  // the caller's, for the team's GEMMs
#pragma omp parallel num_threads(threads)
  {
    const bf16::Scope precision(bf16_mode);
    const int64_t index = omp_get_thread_num(), team = omp_get_num_threads();
    if (split_rows) {
      fn(UnitRange{0, hidden, index, team, batch * index / team, batch * (index + 1) / team,
                   true});
    } else {
      const int64_t groups = (hidden + kUnitGroup - 1) / kUnitGroup;
      fn(UnitRange{std::min(hidden, groups * index / team * kUnitGroup),
                   std::min(hidden, groups * (index + 1) / team * kUnitGroup), index, team, 0,
                   batch, false});
    }
  }
}

// One thread's share of a step's recurrent GEMM: C[:, col] (+)= (A[m, k] @ op(B))[:, col] for
// the columns col = gate * hidden + u, gate < gates, u in the thread's range; B as for
// RecurrentGemm. float on brgemm: the thread packs its own columns once per sequence (into its
// own cache), blocks of up to 64; a batch of one reads B where it lies (as RecurrentGemm).
template <typename scalar_t>
class UnitColumnsGemm {
 public:
  UnitColumnsGemm(int64_t m, int64_t k, const scalar_t* b, int64_t ldb, bool trans_b,
                  int64_t gates, int64_t hidden, UnitRange range, int slot = kScratchRecurrent)
      : m_(m), k_(k), b_(b), ldb_(ldb), trans_b_(trans_b) {
    constexpr int64_t kColumns = 64;
    for (int64_t gate = 0; gate < gates; ++gate) {
      const int64_t end = gate * hidden + range.end;
      for (int64_t column = gate * hidden + range.begin; column < end; column += kColumns)
        blocks_.push_back({column, std::min(kColumns, end - column), 0});
    }
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (bf16::active()) {  // the thread's blocks packed to bf16 panels, in its own cache
        engine_ = GemmEngine::kBf16;
        int64_t size = 0;
        for (Block& block : blocks_) {
          block.offset = size;
          size += bf16::packed_elements(k, block.width);
        }
        packed16_ = static_cast<uint16_t*>(scratch_bytes(slot, size * 2));
        if (packed16_ == nullptr) {
          owned16_.reset(new uint16_t[size]);
          packed16_ = owned16_.get();
        }
        for (const Block& block : blocks_)
          bf16::pack(b + block.column * (trans_b ? ldb : 1), trans_b ? 1 : ldb,
                     trans_b ? ldb : 1, k, block.width, packed16_ + block.offset);
        return;
      }
#if defined(CPUBLAS_BRGEMM_F32F32F32)
      if (float_engine() != GemmEngine::kBrgemm) return;
      const bool few = few_rows(m, gates * hidden * k);
      engine_ = few && trans_b ? GemmEngine::kFewRows : GemmEngine::kBrgemm;
      if (few) return;
      int64_t size = 0;
      for (Block& block : blocks_) {
        block.offset = size;
        size += block.width * k;
      }
      packed_ = static_cast<float*>(scratch_bytes(slot, size * 4));
      if (packed_ == nullptr) {
        owned_.reset(new float[size]);
        packed_ = owned_.get();
      }
      for (const Block& block : blocks_)
        pack_block(b, trans_b ? 1 : ldb, trans_b ? ldb : 1, k, block.column, block.width,
                   packed_ + block.offset);
#endif
    }
  }

  // beta is 0 (overwrite C) or 1 (add to C).
  void run(const scalar_t* a, int64_t lda, scalar_t beta, scalar_t* c, int64_t ldc) const {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (engine_ == GemmEngine::kBf16) {
        const uint16_t* a16 = bf16::round_rows_scratch(a, lda, m_, k_);
        for (const Block& block : blocks_)
          bf16::gemm_packed(m_, block.width, k_, a16, bf16::even(k_), packed16_ + block.offset,
                            beta != 0.0f, c + block.column, ldc);
        return;
      }
    }
#if defined(CPUBLAS_BRGEMM_F32F32F32)
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (engine_ == GemmEngine::kBrgemm) {
        // K in chunks, each over every block: a chunk of A and of a block stay in L2 (K 3072 at
        // 64 rows: 190 GFLOP/s in one go, 222 in chunks of 1024)
        const bool packed = packed_ != nullptr;
        for (int64_t depth = 0; depth < k_; depth += kDepthChunk) {
          const int64_t chunk = std::min(kDepthChunk, k_ - depth);
          for (const Block& block : blocks_) {
            const float* block_b = packed ? packed_ + block.offset + depth * block.width
                                          : b_ + depth * ldb_ + block.column;
            at::native::cpublas::brgemm(m_, block.width, chunk, lda, packed ? block.width : ldb_,
                                        ldc, beta != 0.0f || depth > 0, a + depth, block_b,
                                        c + block.column, false);
          }
        }
        return;
      }
    }
#endif
    for (const Block& block : blocks_) {
      scalar_t* out = c + block.column;
      if constexpr (std::is_same_v<scalar_t, float>) {
        if (engine_ == GemmEngine::kFewRows) {
          few_rows_times_transposed(m_, block.width, k_, a, lda, b_ + block.column * ldb_, ldb_,
                                    beta != 0.0f, out, ldc, false);
          continue;
        }
      }
      const scalar_t* block_b = trans_b_ ? b_ + block.column * ldb_ : b_ + block.column;
      gemm<scalar_t>(false, trans_b_, m_, block.width, k_, scalar_t(1), a, lda, block_b, ldb_,
                     beta, out, ldc);
    }
  }

 private:
  struct Block {
    int64_t column, width, offset;
  };
  int64_t m_, k_;
  const scalar_t* b_;
  int64_t ldb_;
  bool trans_b_;
  GemmEngine engine_ = GemmEngine::kPlain;
  std::vector<Block> blocks_;
  float* packed_ = nullptr;  // this thread's scratch (or owned_ above the cap)
  std::unique_ptr<float[]> owned_;
  uint16_t* packed16_ = nullptr;  // kBf16: the same in bf16 panels
  std::unique_ptr<uint16_t[]> owned16_;
};

// ---- activations ------------------------------------------------------------------------------
// float: Cephes' expf polynomial (about 1 ulp), branch-free so the compiler vectorises the
// pointwise loops; double: libm, to stay within 1e-10 of the reference.

// Always inlined: a call in a pointwise loop keeps gcc from vectorising it, and gcc's inliner
// stops short of these in long lambdas (measured: the LSTM backward's row pass ran scalar).
#define RNNKIT_INLINE inline __attribute__((always_inline))

RNNKIT_INLINE float exp_float(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // vmaxps/vminps; exp(x) stays normal
  float whole = std::floor(x * 1.44269504088896341f + 0.5f);  // round(x / ln 2)
  float r = x - whole * 0.693359375f + whole * 2.12194440e-4f;  // x - whole * ln 2, in two parts
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (int32_t(whole) + 127) << 23;  // 2^whole
  return y * __builtin_bit_cast(float, bits);
}

template <typename scalar_t>
inline scalar_t sigmoid(scalar_t x);
template <>
RNNKIT_INLINE float sigmoid<float>(float x) {
  return 1.0f / (1.0f + exp_float(-x));
}
template <>
RNNKIT_INLINE double sigmoid<double>(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

template <typename scalar_t>
inline scalar_t tanh_(scalar_t x);
template <>
RNNKIT_INLINE float tanh_<float>(float x) {
  const float e = exp_float(-2.0f * std::fabs(x));
  return std::copysign((1.0f - e) / (1.0f + e), x);
}
template <>
RNNKIT_INLINE double tanh_<double>(double x) {
  return std::tanh(x);
}

// Pointwise loops are vectorised by the compiler; `omp simd` (built with -fopenmp) tells it the
// gate slices of one row never overlap, which it cannot prove through the pointer arithmetic.
#define RNNKIT_SIMD _Pragma("omp simd")

// ---- the pointwise pass -----------------------------------------------------------------------
// fn(row, begin, end) over the columns [begin, end) of `rows` rows of `width` elements; split
// over the cores only when a step has enough elements to pay for waking the second thread.
constexpr int64_t kParallelGrain = 16384;

template <typename F>
inline void for_each_segment(int64_t rows, int64_t width, const F& fn) {
  const int64_t total = rows * width;
  auto body = [&](int64_t begin, int64_t end) {
    while (begin < end) {
      const int64_t row = begin / width, column = begin % width;
      const int64_t stop = std::min(width, column + (end - begin));
      fn(row, column, stop);
      begin += stop - column;
    }
  };
  if (total < 2 * kParallelGrain || at::get_num_threads() == 1) {
    body(0, total);
  } else {
    at::parallel_for(0, total, kParallelGrain, body);
  }
}

// ---- helpers for the bindings -----------------------------------------------------------------
inline const Tensor* get(const OptionalTensor& tensor) {
  return tensor.has_value() && tensor->defined() ? &*tensor : nullptr;
}

template <typename scalar_t>
inline const scalar_t* data_or_null(const Tensor* tensor) {
  return tensor == nullptr ? nullptr : tensor->data_ptr<scalar_t>();
}

// 1 where the sequence still runs at step t for batch row n (mask [T, N, 1] flattened).
template <typename scalar_t>
inline bool running(const scalar_t* mask, int64_t t, int64_t batch, int64_t row) {
  return mask == nullptr || mask[t * batch + row] != scalar_t(0);
}

// ---- whole-sequence GEMMs ----------------------------------------------------------------------
// out[M, N] (= or +=) a[M, K] @ b[K, N], a and b any strided 2-D views, out row-major. float on
// the brgemm engine: a is made row-major, b is packed into column blocks like RecurrentGemm's,
// and tiles of (rows, column block) are spread over the cores, K taken in chunks so a block of
// b stays in cache. Other dtypes and engines: ATen's mm.
inline void matmul_into(Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) {
  if (out.scalar_type() == at::kFloat && bf16::active() && out.stride(1) == 1 && a.numel() > 0 &&
      b.numel() > 0) {
    bf16::matmul(out, a, b, accumulate);
    return;
  }
#if defined(CPUBLAS_BRGEMM_F32F32F32)
  // b stored transposed (W_ih^T in the input projection) must be transposed while packing;
  // below ~800 rows that costs more than brgemm gains over MKL's own handling (measured 0.47x
  // at 50 x 1024 x 4096, 0.84x at 400 rows, 0.98-1.17x at 800, 1.06-1.24x from 1600).
  constexpr int64_t kMinRowsToTranspose = 800;
  if (out.scalar_type() == at::kFloat && float_engine() == GemmEngine::kBrgemm &&
      out.stride(1) == 1 && a.numel() > 0 && b.numel() > 0 &&
      (b.stride(1) == 1 || a.size(0) >= kMinRowsToTranspose)) {
    const Tensor left = a.stride(1) == 1 ? a : a.contiguous();
    const int64_t m = left.size(0), k = left.size(1), n = b.size(1);
    constexpr int64_t kRows = 128;
    const int64_t block = column_block(n);
    const int64_t blocks = (n + block - 1) / block, row_tiles = (m + kRows - 1) / kRows;
    std::vector<float> owned;
    float* packed = static_cast<float*>(scratch_bytes(kScratchPackedB, n * k * 4));
    if (packed == nullptr) {
      owned.resize(size_t(n * k));
      packed = owned.data();
    }
    pack_column_blocks(b.data_ptr<float>(), b.stride(0), b.stride(1), k, n, block, packed);
    const float* a_data = left.data_ptr<float>();
    const int64_t lda = left.stride(0), ldc = out.stride(0);
    float* c_data = out.data_ptr<float>();
    at::parallel_for(0, row_tiles * blocks, 1, [&](int64_t first, int64_t last) {
      for (int64_t tile = first; tile < last; ++tile) {
        const int64_t row = (tile / blocks) * kRows, rows = std::min(kRows, m - row);
        const int64_t begin = (tile % blocks) * block, width = std::min(block, n - begin);
        for (int64_t depth = 0; depth < k; depth += kDepthChunk) {
          const int64_t chunk = std::min(kDepthChunk, k - depth);
          at::native::cpublas::brgemm(rows, width, chunk, lda, width, ldc,
                                      accumulate || depth > 0, a_data + row * lda + depth,
                                      packed + begin * k + depth * width,
                                      c_data + row * ldc + begin, false);
        }
      }
    });
    return;
  }
#endif
  if (accumulate) {
    at::addmm_out(out, out, a, b);
  } else {
    at::mm_out(out, a, b);
  }
}

inline Tensor matrix_product(const Tensor& a, const Tensor& b) {
  Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  matmul_into(out, a, b, false);
  return out;
}

// Time-batched weight gradient: sum_t grad[t]^T @ inputs[t], i.e. [T*N, G]^T @ [T*N, K]. The
// left operand is grad transposed, [G, T*N] row-major (gradient_rows): made once per backward
// and shared by dW_ih and dW_hh, a copy of the whole gradient each.
inline Tensor gradient_rows(const Tensor& grad, int slot = kScratchRows) {
  const Tensor rows = grad.reshape({-1, grad.size(-1)}).t();
  return scratch(slot, rows.sizes(), rows.options()).copy_(rows);
}

inline Tensor weight_gradient_from_rows(const Tensor& rows, const Tensor& inputs) {
  return matrix_product(rows, inputs.reshape({-1, inputs.size(-1)}));
}

// The same product with no transposed copy of grad: the BLAS reads [T*N, G] transposed in place
// (a copy would be another [T, N, G] at the backward's peak). The bf16 kernel rounds a
// contiguous copy of its left operand in any case, so under it the copy stays.
inline Tensor weight_gradient(const Tensor& grad, const Tensor& inputs) {
  if (grad.scalar_type() == at::kFloat && bf16::active())
    return weight_gradient_from_rows(gradient_rows(grad), inputs);
  return at::mm(grad.reshape({-1, grad.size(-1)}).t(), inputs.reshape({-1, inputs.size(-1)}));
}

// The input projection of every step: out[T*N, G] = x[T*N, I] @ W_ih^T (+ bias).
inline void input_projection(Tensor& out, const Tensor& flat, const Tensor& weight_ih,
                             const Tensor* bias) {
  if (bias != nullptr) out.copy_(bias->expand_as(out));
  matmul_into(out, flat, weight_ih.t(), bias != nullptr);
}

std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                 const Tensor& weight_ih, const Tensor& weight_hh,
                                 const OptionalTensor& bias, const OptionalTensor& weight_hr,
                                 const OptionalTensor& mask);
std::vector<Tensor> lstm_backward(const OptionalTensor& grad_output,
                                  const OptionalTensor& grad_h_n, const OptionalTensor& grad_c_n,
                                  const Tensor& x, const Tensor& weight_ih,
                                  const Tensor& weight_hh, const OptionalTensor& weight_hr,
                                  const Tensor& hiddens, const Tensor& cells, const Tensor& gates,
                                  const OptionalTensor& mask, bool record, bool has_bias,
                                  std::vector<bool> needs);
std::vector<Tensor> gru_forward(const Tensor& x, const Tensor& h0, const Tensor& weight_ih,
                                const Tensor& weight_hh, const OptionalTensor& bias_ih,
                                const OptionalTensor& bias_hh, const OptionalTensor& mask);
std::vector<Tensor> gru_backward(const OptionalTensor& grad_output,
                                 const OptionalTensor& grad_h_n, const Tensor& x,
                                 const Tensor& weight_ih, const Tensor& weight_hh,
                                 const Tensor& hiddens, const Tensor& gates,
                                 const Tensor& hidden_new, const OptionalTensor& mask, bool record,
                                 bool has_bias, std::vector<bool> needs);
std::vector<Tensor> rnn_forward(const Tensor& x, const Tensor& h0, const Tensor& weight_ih,
                                const Tensor& weight_hh, const OptionalTensor& bias, bool relu,
                                const OptionalTensor& mask);
std::vector<Tensor> rnn_backward(const OptionalTensor& grad_output,
                                 const OptionalTensor& grad_h_n, const Tensor& x,
                                 const Tensor& weight_ih, const Tensor& weight_hh,
                                 const Tensor& hiddens, const OptionalTensor& mask, bool relu,
                                 bool record, bool has_bias, std::vector<bool> needs);

}  // namespace rnnkit
