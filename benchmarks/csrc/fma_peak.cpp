// Peak multiply-add throughput of one core: float32 FMA (vfmadd231ps) against bf16 dot
// products (vdpbf16ps: 32 bf16 products summed pairwise into 16 float32 lanes) and int8 dot
// products (vpdpbusd: 64 u8 x s8 products into 16 int32 lanes), each on 24 independent
// zmm accumulators (more than latency x ports, so the loop measures throughput, not latency).
// Prints one line per instruction: "name multiply-adds-per-second".
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

constexpr int kAccumulators = 24;

template <typename Step>
double rate(long iterations, int macs_per_instruction, Step step) {
  auto start = std::chrono::steady_clock::now();
  step(iterations);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return double(iterations) * kAccumulators * macs_per_instruction / seconds;
}

__attribute__((noinline)) float fma_f32(long iterations, float seed) {
  __m512 a[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) a[i] = _mm512_set1_ps(seed + i);
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
  for (long n = 0; n < iterations; ++n)
#pragma GCC unroll 24
    for (int i = 0; i < kAccumulators; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  __m512 sum = a[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, a[i]);
  return _mm512_reduce_add_ps(sum);
}

__attribute__((noinline, target("avx512bf16"))) float dot_bf16(long iterations, float seed) {
  __m512 a[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) a[i] = _mm512_set1_ps(seed + i);
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  for (long n = 0; n < iterations; ++n)
#pragma GCC unroll 24
    for (int i = 0; i < kAccumulators; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, y);
  __m512 sum = a[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, a[i]);
  return _mm512_reduce_add_ps(sum);
}

__attribute__((noinline, target("avx512vnni"))) int dot_int8(long iterations, int seed) {
  __m512i a[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) a[i] = _mm512_set1_epi32(seed + i);
  const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
  for (long n = 0; n < iterations; ++n)
#pragma GCC unroll 24
    for (int i = 0; i < kAccumulators; ++i) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
  __m512i sum = a[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_epi32(sum, a[i]);
  return _mm512_reduce_add_epi32(sum);
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 20000000;
  float seed = argc > 2 ? std::atof(argv[2]) : 1.0f;  // unknown to the compiler: no folding
  volatile float sink = 0;
  fma_f32(iterations / 10, seed);  // warm up (frequency, page faults)
  std::printf("fma_f32 %.6g\n", rate(iterations, 16, [&](long n) { sink = fma_f32(n, seed); }));
  std::printf("dot_bf16 %.6g\n", rate(iterations, 32, [&](long n) { sink = dot_bf16(n, seed); }));
  std::printf("dot_int8 %.6g\n", rate(iterations, 64, [&](long n) {
    sink = float(dot_int8(n, int(seed))); }));
  return sink == 12345.0f;
}
