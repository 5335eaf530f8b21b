// rnnkit's bf16 GEMM on vdpbf16ps (see bf16.h), and its operators:
//   rnnkit::cpu_has_avx512_bf16() -> bool      the CPU runs AVX512-BF16
//   rnnkit::set_bf16_matmul(bool) -> bool      the calling thread's mode; returns the previous
//   rnnkit::bf16_matmul_calls() -> int         microkernel runs since load
//   rnnkit::bf16_matmul(Tensor a, Tensor b)    a [m, k] @ b [k, n] on the kernel (float32)
// Built with RNNKIT_BF16_STANDALONE it is the kernel alone (no torch), for a test program.
#include "bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#ifndef RNNKIT_BF16_STANDALONE
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#endif

#define RNNKIT_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

namespace rnnkit {
namespace bf16 {
namespace {

thread_local bool t_active = false;
std::atomic<int64_t> g_calls{0};

constexpr int kMaxRows = 6;    // rows of a register tile: 6 x 4 accumulators, 4 B loads
constexpr int kMaxPanels = 4;  // panels of a register tile: 64 columns
// k pairs per pass over the panels: a chunk of a 4-panel group is 256 x 64 bf16 = 32 KiB,
// which stays in L1 while every row tile reads it
constexpr int64_t kChunkPairs = 256;

// acc[r][v] (+)= sum over `pairs` pairs q of a[r][2q..2q+1] . panel v's column pairs at q
template <int R, int V>
RNNKIT_BF16_TARGET void tile(int64_t pairs, const uint16_t* a, int64_t lda, const uint16_t* b,
                             int64_t panel_stride, bool load_c, float* c, int64_t ldc,
                             __mmask16 last) {
  __m512 acc[R][V];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < V; ++v) {
      const __mmask16 mask = v == V - 1 ? last : __mmask16(0xFFFF);
      acc[r][v] = load_c ? _mm512_maskz_loadu_ps(mask, c + r * ldc + v * kPanel)
                         : _mm512_setzero_ps();
    }
  }
  for (int64_t q = 0; q < pairs; ++q) {
    __m512bh right[V];
    for (int v = 0; v < V; ++v)
      right[v] = (__m512bh)_mm512_loadu_si512(b + v * panel_stride + q * 2 * kPanel);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda + 2 * q, sizeof(pair));
      const __m512bh left = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], left, right[v]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < V; ++v) {
      const __mmask16 mask = v == V - 1 ? last : __mmask16(0xFFFF);
      _mm512_mask_storeu_ps(c + r * ldc + v * kPanel, mask, acc[r][v]);
    }
  }
}

using TileFn = void (*)(int64_t, const uint16_t*, int64_t, const uint16_t*, int64_t, bool,
                        float*, int64_t, __mmask16);

template <int R>
constexpr TileFn tile_for(int panels) {
  return panels == 1 ? &tile<R, 1> : panels == 2 ? &tile<R, 2> : panels == 3 ? &tile<R, 3>
                                                                              : &tile<R, 4>;
}

TileFn tile_function(int rows, int panels) {
  switch (rows) {
    case 1: return tile_for<1>(panels);
    case 2: return tile_for<2>(panels);
    case 3: return tile_for<3>(panels);
    case 4: return tile_for<4>(panels);
    case 5: return tile_for<5>(panels);
    default: return tile_for<6>(panels);
  }
}

RNNKIT_BF16_TARGET void round_row(const float* a, int64_t k, uint16_t* out, int64_t kp) {
  for (int64_t j = 0; j < kp; j += 32) {
    const int64_t left = k - j;
    const __mmask16 low = left >= 16 ? __mmask16(0xFFFF)
                                     : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    const __mmask16 high = left >= 32 ? __mmask16(0xFFFF)
                                      : left <= 16 ? __mmask16(0)
                                                   : __mmask16((1u << (left - 16)) - 1);
    const __m512 lo = _mm512_maskz_loadu_ps(low, a + j);
    const __m512 hi = _mm512_maskz_loadu_ps(high, a + j + 16);
    const __m512bh packed = _mm512_cvtne2ps_pbh(hi, lo);  // lo into the lower 16
    const int64_t store = std::min<int64_t>(32, kp - j);
    const __mmask32 mask = store >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << store) - 1);
    _mm512_mask_storeu_epi16(out + j, mask, (__m512i)packed);
  }
}

// One panel of B [k, width <= 16] whose rows are contiguous (stride_n 1): rows 2q and 2q+1
// rounded together (the lower 16 lanes from row 2q) and interleaved into column pairs.
RNNKIT_BF16_TARGET void pack_panel_rows(const float* b, int64_t stride_k, int64_t k,
                                        int64_t width, uint16_t* dest) {
  alignas(64) static const uint16_t kInterleave[32] = {
      0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i order = _mm512_load_si512(kInterleave);
  const __mmask16 columns = width >= kPanel ? __mmask16(0xFFFF) : __mmask16((1u << width) - 1);
  for (int64_t q = 0; 2 * q < k; ++q) {
    const __m512 low = _mm512_maskz_loadu_ps(columns, b + 2 * q * stride_k);
    const __m512 high = 2 * q + 1 < k ? _mm512_maskz_loadu_ps(columns, b + (2 * q + 1) * stride_k)
                                      : _mm512_setzero_ps();
    const __m512i rounded = (__m512i)_mm512_cvtne2ps_pbh(high, low);
    _mm512_storeu_si512(dest + q * 2 * kPanel, _mm512_permutexvar_epi16(order, rounded));
  }
}

// One panel of B [k, width <= 16] whose columns are contiguous (stride_k 1, a weight W [n, k]
// read as W^T): each column rounded whole into `rows` [16, kp], then the pairs (32 bits each)
// gathered 16 columns at a time.
RNNKIT_BF16_TARGET void pack_panel_columns(const float* b, int64_t stride_n, int64_t k,
                                           int64_t width, uint16_t* dest, uint16_t* rows) {
  const int64_t kp = even(k), pairs = kp / 2;
  for (int64_t col = 0; col < width; ++col) round_row(b + col * stride_n, k, rows + col * kp, kp);
  const __mmask16 columns = width >= kPanel ? __mmask16(0xFFFF) : __mmask16((1u << width) - 1);
  const __m512i index = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(int32_t(pairs)));
  const int32_t* source = reinterpret_cast<const int32_t*>(rows);
  for (int64_t q = 0; q < pairs; ++q) {
    const __m512i gathered =
        _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), columns, index, source + q, 4);
    _mm512_storeu_si512(dest + q * 2 * kPanel, gathered);
  }
}

bool detect() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

}  // namespace

bool cpu_supported() {
  static const bool supported = detect();
  return supported;
}

bool active() { return t_active; }

bool set_active(bool on) {
  const bool previous = t_active;
  t_active = on && cpu_supported();
  return previous;
}

int64_t calls() { return g_calls.load(std::memory_order_relaxed); }

uint16_t round_one(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7F800000u) == 0) return uint16_t((bits >> 16) & 0x8000u);  // zero, subnormal
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // to nearest, ties to even
  return uint16_t(bits >> 16);
}

void pack(const float* b, int64_t stride_k, int64_t stride_n, int64_t k, int64_t n,
          uint16_t* out) {
  const int64_t pairs = even(k) / 2, size = panel_elements(k);
  if (k > 0 && (stride_n == 1 || stride_k == 1)) {  // the vector paths
    thread_local std::vector<uint16_t> rows;
    if (stride_n != 1 && int64_t(rows.size()) < kPanel * even(k))
      rows.resize(size_t(kPanel * even(k)));
    for (int64_t p = 0; p < panels(n); ++p) {
      const int64_t first = p * kPanel, width = std::min(kPanel, n - first);
      if (stride_n == 1) {
        pack_panel_rows(b + first, stride_k, k, width, out + p * size);
      } else {
        pack_panel_columns(b + first * stride_n, stride_n, k, width, out + p * size,
                           rows.data());
      }
    }
    return;
  }
  for (int64_t p = 0; p < panels(n); ++p) {
    uint16_t* dest = out + p * size;
    const int64_t first = p * kPanel, width = std::min(kPanel, n - first);
    if (width < kPanel || k % 2 != 0) std::fill(dest, dest + size, uint16_t(0));
    if (stride_n == 1) {  // a row of B is contiguous: along k, then the panel's columns
      for (int64_t kk = 0; kk < k; ++kk) {
        const float* row = b + kk * stride_k + first;
        uint16_t* to = dest + (kk / 2) * 2 * kPanel + (kk % 2);
        for (int64_t col = 0; col < width; ++col) to[2 * col] = round_one(row[col]);
      }
    } else {  // a column of B is (near) contiguous: each column along k
      for (int64_t col = 0; col < width; ++col) {
        const float* column = b + (first + col) * stride_n;
        uint16_t* to = dest + 2 * col;
        for (int64_t q = 0; q < pairs; ++q) {
          to[q * 2 * kPanel] = round_one(column[2 * q * stride_k]);
          if (2 * q + 1 < k) to[q * 2 * kPanel + 1] = round_one(column[(2 * q + 1) * stride_k]);
        }
      }
    }
  }
}

void round_rows(const float* a, int64_t lda, int64_t m, int64_t k, uint16_t* out, int64_t ldo) {
  for (int64_t row = 0; row < m; ++row) round_row(a + row * lda, k, out + row * ldo, even(k));
}

const uint16_t* round_rows_scratch(const float* a, int64_t lda, int64_t m, int64_t k) {
  thread_local std::vector<uint16_t> buffer;
  const int64_t kp = even(k);
  if (int64_t(buffer.size()) < m * kp) buffer.resize(size_t(m * kp));
  round_rows(a, lda, m, k, buffer.data(), kp);
  return buffer.data();
}

void gemm_packed(int64_t m, int64_t n, int64_t k, const uint16_t* a16, int64_t lda,
                 const uint16_t* packed, bool add, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  g_calls.fetch_add(1, std::memory_order_relaxed);
  const int64_t pairs = even(k) / 2, size = panel_elements(k), count = panels(n);
  if (pairs == 0) {
    if (!add)
      for (int64_t row = 0; row < m; ++row) std::fill(c + row * ldc, c + row * ldc + n, 0.0f);
    return;
  }
  for (int64_t q0 = 0; q0 < pairs; q0 += kChunkPairs) {
    const int64_t chunk = std::min(kChunkPairs, pairs - q0);
    const bool load_c = add || q0 > 0;
    for (int64_t p = 0; p < count; p += kMaxPanels) {
      const int group = int(std::min<int64_t>(kMaxPanels, count - p));
      const int64_t last_width = std::min(n - (p + group - 1) * kPanel, kPanel);
      const __mmask16 last = last_width >= kPanel ? __mmask16(0xFFFF)
                                                  : __mmask16((1u << last_width) - 1);
      const uint16_t* b = packed + p * size + q0 * 2 * kPanel;
      // rows in tiles of at most 6, as even as they go (batch 8: 4 + 4, not 6 + 2, so each
      // B load feeds at least 4 rows)
      const int64_t tiles = (m + kMaxRows - 1) / kMaxRows;
      for (int64_t index = 0, row = 0; index < tiles; ++index) {
        const int rows = int(m / tiles + (index < m % tiles ? 1 : 0));
        tile_function(rows, group)(chunk, a16 + row * lda + 2 * q0, lda, b, size, load_c,
                                   c + row * ldc + p * kPanel, ldc, last);
        row += rows;
      }
    }
  }
}

#ifndef RNNKIT_BF16_STANDALONE
// out[M, N] (= or +=) a[M, K] @ b[K, N] (any strides; out's rows contiguous): a rounded once,
// b packed once (both spread over the cores), then tiles of (rows, 64 columns) over the cores.
void matmul(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1), kp = even(k);
  const at::Tensor left = a.stride(1) == 1 ? a : a.contiguous();
  const float* a_data = left.data_ptr<float>();
  const float* b_data = b.data_ptr<float>();
  const int64_t lda = left.stride(0), ldc = out.stride(0);
  float* c_data = out.data_ptr<float>();
  // the calling thread's buffers, kept for its next call up to 64 MiB each (a fresh allocation
  // costs a page fault per 4 KiB on every call)
  thread_local std::vector<uint16_t> kept_a, kept_b;
  std::vector<uint16_t> own_a, own_b;
  auto buffer = [](std::vector<uint16_t>& kept, std::vector<uint16_t>& own, int64_t elements) {
    std::vector<uint16_t>& chosen = elements * 2 <= (int64_t(64) << 20) ? kept : own;
    if (int64_t(chosen.size()) < elements) chosen.resize(size_t(elements));
    return chosen.data();
  };
  uint16_t* a16 = buffer(kept_a, own_a, m * kp);
  uint16_t* b16 = buffer(kept_b, own_b, packed_elements(k, n));
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(k, 1));
  at::parallel_for(0, m, grain, [&](int64_t first, int64_t last) {
    round_rows(a_data + first * lda, lda, last - first, k, a16 + first * kp, kp);
  });
  at::parallel_for(0, panels(n), 1, [&](int64_t first, int64_t last) {
    const int64_t begin = first * kPanel, end = std::min(n, last * kPanel);
    pack(b_data + begin * b.stride(1), b.stride(0), b.stride(1), k, end - begin,
         b16 + first * panel_elements(k));
  });
  constexpr int64_t kRows = 96, kColumns = kMaxPanels * kPanel;
  const int64_t row_tiles = (m + kRows - 1) / kRows, column_tiles = (n + kColumns - 1) / kColumns;
  at::parallel_for(0, row_tiles * column_tiles, 1, [&](int64_t first, int64_t last) {
    for (int64_t tile = first; tile < last; ++tile) {
      const int64_t row = (tile / column_tiles) * kRows, rows = std::min(kRows, m - row);
      const int64_t col = (tile % column_tiles) * kColumns, width = std::min(kColumns, n - col);
      gemm_packed(rows, width, k, a16 + row * kp, kp, b16 + (col / kPanel) * panel_elements(k),
                  accumulate, c_data + row * ldc + col, ldc);
    }
  });
}

namespace {

bool cpu_has_avx512_bf16_op() { return cpu_supported(); }
bool set_bf16_matmul_op(bool enabled) { return set_active(enabled); }
int64_t bf16_matmul_calls_op() { return calls(); }

at::Tensor bf16_matmul_op(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(cpu_supported(), "rnnkit::bf16_matmul: this CPU has no AVX512-BF16");
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "rnnkit::bf16_matmul: expected a [m, k] and b [k, n], got ", a.sizes(), " and ",
              b.sizes());
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat,
              "rnnkit::bf16_matmul: expected float32 operands");
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  matmul(out, a, b, false);
  return out;
}

}  // namespace
#endif

}  // namespace bf16
}  // namespace rnnkit

#ifndef RNNKIT_BF16_STANDALONE
TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("cpu_has_avx512_bf16() -> bool", &rnnkit::bf16::cpu_has_avx512_bf16_op);
  m.def("set_bf16_matmul(bool enabled) -> bool", &rnnkit::bf16::set_bf16_matmul_op);
  m.def("bf16_matmul_calls() -> int", &rnnkit::bf16::bf16_matmul_calls_op);
  m.def("bf16_matmul(Tensor a, Tensor b) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) { m.impl("bf16_matmul", &rnnkit::bf16::bf16_matmul_op); }
#endif
