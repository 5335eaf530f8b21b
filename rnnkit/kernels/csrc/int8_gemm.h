// int8 weight x dynamically quantized activation products, with no torch dependency (so the
// microkernel builds and is checked on its own: g++ -O3 -march=native).
//
// Weights: int8 rows w[m, 0..K) (symmetric, per-row float scale w_scale[m]), and rowsum[m] =
// sum_k w[m, k], precomputed once. Activations: each row x[r, 0..K) quantized on the fly,
// symmetric, a_scale[r] = max|x[r]| / 127, q = round-half-even(x * 127 / max|x[r]|) in
// [-127, 127], stored shifted to unsigned, u = q + 128 in [1, 255], in rows padded to a multiple
// of 64 bytes with u = 128 (q = 0). Then
//
//   y[r, m] = float(sum_k q[r, k] w[m, k]) * (a_scale[r] * w_scale[m])
//
// where the AVX512-VNNI kernel computes sum_k u w with vpdpbusd (u8 x s8, four products summed
// into each int32 lane, no saturation) and subtracts 128 * rowsum[m] (the llama.cpp family's
// way of feeding a signed activation to an unsigned-times-signed instruction). The integer dot
// products are exact either way, so the plain C++ loop (sum_k q w) gives the same numbers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define RNNKIT_INT8_X86 1
#endif

namespace rnnkit {
namespace int8 {

constexpr int64_t kAlign = 64;  // one zmm of bytes

inline int64_t padded(int64_t k) { return (k + kAlign - 1) / kAlign * kAlign; }

// Rows of x (stride `stride`) to u8 rows of `padded(k)` bytes; their scales in `scale`.
inline void quantize_rows(const float* x, int64_t stride, int64_t rows, int64_t k, uint8_t* u,
                          float* scale) {
  const int64_t width = padded(k);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * stride;
    uint8_t* out = u + r * width;
    float amax = 0.0f;
    for (int64_t i = 0; i < k; ++i) amax = std::fmax(amax, std::fabs(row[i]));
    scale[r] = amax / 127.0f;
    const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int64_t i = 0; i < k; ++i) {
      float q = std::nearbyint(row[i] * inverse);  // the default mode: half to even
      q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
      out[i] = uint8_t(int32_t(q) + 128);
    }
    for (int64_t i = k; i < width; ++i) out[i] = 128;
  }
}

// The portable kernel: y[r * out_stride + c] for c < columns (weight rows w + c * k). It sums
// u w and subtracts 128 rowsum as the VNNI kernel does: gcc 12 at -O3 -march=native turns
// sum (u - 128) w into wrong vector code (found by the standalone check), sum u w it gets right.
inline void gemm_plain(const uint8_t* u, const float* a_scale, int64_t rows, const int8_t* w,
                       const float* w_scale, const int32_t* rowsum, int64_t columns, int64_t k,
                       float* y, int64_t out_stride) {
  const int64_t width = padded(k);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* a = u + r * width;
    for (int64_t c = 0; c < columns; ++c) {
      const int8_t* b = w + c * k;
      int32_t acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += int32_t(a[i]) * int32_t(b[i]);
      acc -= 128 * rowsum[c];
      y[r * out_stride + c] = float(acc) * (a_scale[r] * w_scale[c]);
    }
  }
}

#ifdef RNNKIT_INT8_X86
#define RNNKIT_VNNI __attribute__((target("avx512vnni,avx512bw,avx512f")))

// The sums of the 16 lanes of a, b, c and d, as the 4 lanes of one register: two interleaving
// adds leave each 128-bit lane holding partial sums of a, b, c, d in order, then the four
// lanes are added (a dozen instructions for what four full reductions take forty for).
RNNKIT_VNNI inline __m128i sum4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  const __m512i abcd =
      _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  const __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(abcd),
                                        _mm512_extracti64x4_epi64(abcd, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
}

// One tile: R activation rows by C weight rows, R * C zmm accumulators.
template <int R, int C>
RNNKIT_VNNI inline void tile_vnni(const uint8_t* u, int64_t width, const int8_t* w, int64_t k,
                                  int32_t* out /* [R][C] */) {
  __m512i acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_si512();
  const int64_t whole = k / kAlign * kAlign;
  for (int64_t i = 0; i < whole; i += kAlign) {
    __m512i b[C];
    for (int c = 0; c < C; ++c) b[c] = _mm512_loadu_si512(w + c * k + i);
    for (int r = 0; r < R; ++r) {
      const __m512i a = _mm512_loadu_si512(u + r * width + i);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], a, b[c]);
    }
  }
  if (whole < k) {  // the weights' tail: masked load (zeros past k); activations are padded
    const __mmask64 mask = (~0ULL) >> (kAlign - (k - whole));
    __m512i b[C];
    for (int c = 0; c < C; ++c) b[c] = _mm512_maskz_loadu_epi8(mask, w + c * k + whole);
    for (int r = 0; r < R; ++r) {
      const __m512i a = _mm512_loadu_si512(u + r * width + whole);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], a, b[c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    if constexpr (C == 4) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + r * C),
                       sum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
    } else {
      for (int c = 0; c < C; ++c) out[r * C + c] = _mm512_reduce_add_epi32(acc[r][c]);
    }
  }
}

template <int R, int C>
RNNKIT_VNNI inline void store_tile(const int32_t* sums, const float* a_scale, const float* w_scale,
                                   const int32_t* rowsum, float* y, int64_t out_stride) {
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const int32_t acc = sums[r * C + c] - 128 * rowsum[c];
      y[r * out_stride + c] = float(acc) * (a_scale[r] * w_scale[c]);
    }
}

template <int R>
RNNKIT_VNNI inline void row_block_vnni(const uint8_t* u, const float* a_scale, const int8_t* w,
                                       const float* w_scale, const int32_t* rowsum,
                                       int64_t columns, int64_t k, float* y, int64_t out_stride) {
  const int64_t width = padded(k);
  int32_t sums[R * 4];
  int64_t c = 0;
  for (; c + 4 <= columns; c += 4) {
    tile_vnni<R, 4>(u, width, w + c * k, k, sums);
    store_tile<R, 4>(sums, a_scale, w_scale + c, rowsum + c, y + c, out_stride);
  }
  for (; c < columns; ++c) {
    tile_vnni<R, 1>(u, width, w + c * k, k, sums);
    store_tile<R, 1>(sums, a_scale, w_scale + c, rowsum + c, y + c, out_stride);
  }
}

// The VNNI kernel: the same contract as gemm_plain.
RNNKIT_VNNI inline void gemm_vnni(const uint8_t* u, const float* a_scale, int64_t rows,
                                  const int8_t* w, const float* w_scale, const int32_t* rowsum,
                                  int64_t columns, int64_t k, float* y, int64_t out_stride) {
  const int64_t width = padded(k);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4)
    row_block_vnni<4>(u + r * width, a_scale + r, w, w_scale, rowsum, columns, k,
                      y + r * out_stride, out_stride);
  for (; r < rows; ++r)
    row_block_vnni<1>(u + r * width, a_scale + r, w, w_scale, rowsum, columns, k,
                      y + r * out_stride, out_stride);
}

inline bool cpu_has_vnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512f");
}
#else
inline bool cpu_has_vnni() { return false; }
inline void gemm_vnni(const uint8_t* u, const float* a_scale, int64_t rows, const int8_t* w,
                      const float* w_scale, const int32_t* rowsum, int64_t columns, int64_t k,
                      float* y, int64_t out_stride) {
  gemm_plain(u, a_scale, rows, w, w_scale, rowsum, columns, k, y, out_stride);
}
#endif

// Whether this call runs the VNNI kernel: the CPU has it and RNNKIT_NO_VNNI is not set to a
// value other than "" or "0" (read per call, so a test can force the fallback).
inline bool use_vnni() {
  static const bool has = cpu_has_vnni();
  if (!has) return false;
  const char* off = std::getenv("RNNKIT_NO_VNNI");
  return off == nullptr || off[0] == '\0' || (off[0] == '0' && off[1] == '\0');
}

using GemmFn = void (*)(const uint8_t*, const float*, int64_t, const int8_t*, const float*,
                        const int32_t*, int64_t, int64_t, float*, int64_t);

inline GemmFn gemm_for(bool vnni) { return vnni ? &gemm_vnni : &gemm_plain; }

}  // namespace int8
}  // namespace rnnkit
