// rnnkit's bf16 GEMM: C[m, n] (+)= A[m, k] @ B[k, n] with A and B rounded to bfloat16 and the
// products summed in float32, on AVX512-BF16's vdpbf16ps (_mm512_dpbf16_ps: per 32-bit lane,
// two bf16 products added to a float32 accumulator). The recurrent layers use it for their
// input and recurrent GEMMs (and the backward's dL/dh_{t-1}, dx and dW) while a call runs in
// bf16 mode; their gate math, cell and hidden states, bias and gradients stay float32, as in
// oneDNN's bf16 RNN.
//
// Layouts:
//   A, rounded (round_rows): row-major bf16 [m, kp], kp = k rounded up to even, the pad zero,
//     so the pair (a[r][2q], a[r][2q+1]) is one 32-bit broadcast.
//   B, packed (pack): panels of 16 columns; panel p holds columns [16p, 16p + 16) as
//     [kp / 2][16][2] bf16, i.e. for every pair of k the 16 columns' two values interleaved:
//     one zmm, the operand vdpbf16ps wants. Columns past n and the odd k's pair are zero.
//     Panels are independent, so the panels of a 16-aligned column range are themselves a
//     packed matrix (panel p starts at p * panel_elements(k)).
//
// The code is compiled with target("avx512bf16,...") attributes, so a build without
// -march=native still carries it; cpu_supported() decides at run time, and set_active() refuses
// on a CPU without the feature.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rnnkit {
namespace bf16 {

constexpr int64_t kPanel = 16;  // columns per packed panel (one zmm of float32 accumulators)

inline int64_t even(int64_t k) { return (k + 1) & ~int64_t(1); }
inline int64_t panels(int64_t n) { return (n + kPanel - 1) / kPanel; }
// bf16 elements of one packed panel of depth k, and of a packed [k, n]
inline int64_t panel_elements(int64_t k) { return even(k) * kPanel; }
inline int64_t packed_elements(int64_t k, int64_t n) { return panels(n) * panel_elements(k); }

// Whether this CPU (and OS) runs AVX512-BF16 (cpuid, once).
bool cpu_supported();

// The calling thread's mode: while on, the float32 GEMMs of common.h run on this kernel.
bool active();
// Switch the calling thread's mode; returns the previous one. On a CPU without AVX512-BF16 the
// mode stays off (the float32 kernels run).
bool set_active(bool on);

// The mode of another thread's caller carried into a team thread (on_unit_ranges).
class Scope {
 public:
  explicit Scope(bool on) : previous_(set_active(on)) {}
  ~Scope() { set_active(previous_); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool previous_;
};

// How many times gemm_packed ran since the library was loaded (a test's proof the kernel ran).
int64_t calls();

// Round-to-nearest-even of one float to bf16 (subnormals to zero, as vcvtne2ps2bf16 does).
uint16_t round_one(float value);

// B[kk][col] = b[kk * stride_k + col * stride_n], kk < k, col < n, packed into `out`
// (packed_elements(k, n) elements).
void pack(const float* b, int64_t stride_k, int64_t stride_n, int64_t k, int64_t n,
          uint16_t* out);

// A [m, k] (row stride lda) rounded into out [m, even(k)] (row stride ldo >= even(k)).
void round_rows(const float* a, int64_t lda, int64_t m, int64_t k, uint16_t* out, int64_t ldo);

// The same into the calling thread's own buffer (valid until its next call), row stride
// even(k): for the per-step A of a recurrent GEMM.
const uint16_t* round_rows_scratch(const float* a, int64_t lda, int64_t m, int64_t k);

// C[m, n] (+= when add) A16[m, kp] @ B, B packed as above with depth k (its first
// panels(n) panels), A16 of row stride lda (>= even(k)).
void gemm_packed(int64_t m, int64_t n, int64_t k, const uint16_t* a16, int64_t lda,
                 const uint16_t* packed, bool add, float* c, int64_t ldc);

}  // namespace bf16
}  // namespace rnnkit

#ifndef RNNKIT_BF16_STANDALONE
namespace at {
class Tensor;
}
namespace rnnkit {
namespace bf16 {
// out[M, N] (= or += when accumulate) a[M, K] @ b[K, N] on the kernel: float32 tensors, a and b
// any strides, out's rows contiguous (common.h's matmul_into in bf16 mode).
void matmul(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate);
}  // namespace bf16
}  // namespace rnnkit
#endif
