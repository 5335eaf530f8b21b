// rnnkit fused kernels: the pieces the variant kernels (lstm_variants.cpp, gru_variants.cpp)
// share: compile-time flag dispatch, per-row parallel passes, layer-norm rows (two-pass mean
// and variance in L1, as bptt/layer_norm.py), zoneout rows and column sums.
//
// Layer norm (Ba et al. 2016, arXiv 1607.06450), over the last dimension of width W:
//   normalized = (z - mean(z)) * rstd,  rstd = 1 / sqrt(mean((z - mean(z))^2) + 1e-5)
//   y = normalized * gain + bias
//   dL/dz = rstd * (g - mean(g) - normalized * mean(g * normalized)),  g = dL/dy * gain
#pragma once

#include "common.h"

#include <type_traits>

namespace rnnkit {

constexpr double kLayerNormEps = 1e-5;

// On a row pass: inline every call in it (sigmoid, tanh_, exp_float, the row statistics). The
// variant passes are long enough that gcc's inliner otherwise stops short of exp_float, and a
// call per element keeps the loop from being vectorised.
#define RNNKIT_FLATTEN __attribute__((flatten))

// fn(std::true_type or std::false_type): one instantiation per flag value, chosen once per call.
template <typename Fn>
inline void with_flag(bool value, const Fn& fn) {
  if (value) {
    fn(std::true_type{});
  } else {
    fn(std::false_type{});
  }
}

// fn(row) for rows [0, rows), each row `row_cost` elements of work; split over the cores only
// when a step has enough elements to pay for waking the second thread (as for_each_segment).
template <typename F>
inline void for_each_row(int64_t rows, int64_t row_cost, const F& fn) {
  const int64_t total = rows * row_cost;
  if (total < 2 * kParallelGrain || at::get_num_threads() == 1 || rows == 1) {
    for (int64_t row = 0; row < rows; ++row) fn(row);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(row_cost, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) fn(row);
  });
}

// (mean, rstd) of one row of `width` values: two passes over a row that stays in L1.
template <typename scalar_t>
inline std::pair<scalar_t, scalar_t> row_statistics(const scalar_t* __restrict__ z,
                                                    int64_t width) {
  scalar_t sum = 0;
  _Pragma("omp simd reduction(+ : sum)")
  for (int64_t j = 0; j < width; ++j) sum += z[j];
  const scalar_t mean = sum / scalar_t(width);
  scalar_t squares = 0;
  _Pragma("omp simd reduction(+ : squares)")
  for (int64_t j = 0; j < width; ++j) {
    const scalar_t centered = z[j] - mean;
    squares += centered * centered;
  }
  const scalar_t rstd = scalar_t(1) / std::sqrt(squares / scalar_t(width) + scalar_t(kLayerNormEps));
  return {mean, rstd};
}

// (mean(g), mean(g * normalized)) with g = grad * gain: the two sums the LN backward needs.
template <typename scalar_t>
inline std::pair<scalar_t, scalar_t> gradient_means(const scalar_t* __restrict__ grad,
                                                    const scalar_t* __restrict__ gain,
                                                    const scalar_t* __restrict__ normalized,
                                                    int64_t width) {
  scalar_t sum = 0, sum_normalized = 0;
  _Pragma("omp simd reduction(+ : sum, sum_normalized)")
  for (int64_t j = 0; j < width; ++j) {
    const scalar_t g = grad[j] * gain[j];
    sum += g;
    sum_normalized += g * normalized[j];
  }
  return {sum / scalar_t(width), sum_normalized / scalar_t(width)};
}

// dL/dz of one row, written over `out` (which may be `grad`).
template <typename scalar_t>
inline void layer_norm_row_backward(const scalar_t* grad, const scalar_t* __restrict__ gain,
                                    const scalar_t* __restrict__ normalized, scalar_t rstd,
                                    int64_t width, scalar_t* out) {
  const auto [mean_g, mean_gn] = gradient_means(grad, gain, normalized, width);
  RNNKIT_SIMD
  for (int64_t j = 0; j < width; ++j) {
    out[j] = rstd * (grad[j] * gain[j] - mean_g - normalized[j] * mean_gn);
  }
}

// Layer norm over `rows` rows of `width` in place: z -> z_norm * gain + ln_bias (+ bias),
// keeping normalized [rows, width] and rstd [rows] for the backward.
template <typename scalar_t>
inline void layer_norm_rows(scalar_t* data, int64_t rows, int64_t width,
                            const scalar_t* gain, const scalar_t* ln_bias, const scalar_t* bias,
                            scalar_t* normalized, scalar_t* rstd_out) {
  for_each_row(rows, width, [&](int64_t row) {
    scalar_t* __restrict__ z = data + row * width;
    scalar_t* __restrict__ kept = normalized + row * width;
    const auto [mean, rstd] = row_statistics(z, width);
    rstd_out[row] = rstd;
    if (bias != nullptr) {
      RNNKIT_SIMD
      for (int64_t j = 0; j < width; ++j) {
        const scalar_t n = (z[j] - mean) * rstd;
        kept[j] = n;
        z[j] = (n * gain[j] + ln_bias[j]) + bias[j];
      }
    } else {
      RNNKIT_SIMD
      for (int64_t j = 0; j < width; ++j) {
        const scalar_t n = (z[j] - mean) * rstd;
        kept[j] = n;
        z[j] = n * gain[j] + ln_bias[j];
      }
    }
  });
}

// out[j] = sum over rows of a[row, j] * b[row, j] (b null: of a alone). The columns are split
// over the cores, so there is no reduction between threads and the order is fixed.
template <typename scalar_t>
inline void column_sums(int64_t rows, int64_t width, const scalar_t* a, int64_t lda,
                        const scalar_t* b, int64_t ldb, scalar_t* out) {
  const int64_t grain = std::max<int64_t>(16, width / std::max(1, at::get_num_threads()));
  auto body = [&](int64_t begin, int64_t end) {
    scalar_t* __restrict__ sums = out;
    for (int64_t j = begin; j < end; ++j) sums[j] = 0;
    for (int64_t row = 0; row < rows; ++row) {
      const scalar_t* __restrict__ left = a + row * lda;
      if (b != nullptr) {
        const scalar_t* __restrict__ right = b + row * ldb;
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) sums[j] += left[j] * right[j];
      } else {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) sums[j] += left[j];
      }
    }
  };
  if (rows * width < 2 * kParallelGrain) {
    body(0, width);
  } else {
    at::parallel_for(0, width, grain, body);
  }
}

template <typename scalar_t>
inline Tensor column_sum_tensor(int64_t rows, int64_t width, const Tensor& a, const Tensor* b) {
  Tensor out = at::empty({width}, a.options());
  column_sums<scalar_t>(rows, width, a.data_ptr<scalar_t>(), width,
                        b ? b->data_ptr<scalar_t>() : nullptr, width, out.data_ptr<scalar_t>());
  return out;
}

// LN over the input projection, backward over all T*N rows at once, fused with the column sums
// the parameters need: grad [rows, W] holds dL/dy on entry and dL/dz on return; sum_grad gets
// the column sums of dL/dy (the biases), sum_normalized those of dL/dy * normalized (the gain)
// and, when `other` is given, sum_other those of dL/dy * other (LN_hh's gain, which sees the
// same dL/dy). Rows are split into fixed chunks with partial sums added in chunk order.
template <typename scalar_t>
inline void layer_norm_input_grads(int64_t rows, int64_t width, scalar_t* grad,
                                   const scalar_t* gain, const scalar_t* normalized,
                                   const scalar_t* rstd, const scalar_t* other,
                                   scalar_t* sum_grad, scalar_t* sum_normalized,
                                   scalar_t* sum_other) {
  const bool parallel = rows * width >= 2 * kParallelGrain && at::get_num_threads() > 1;
  const int64_t chunks = parallel ? std::min<int64_t>(at::get_num_threads(), rows) : 1;
  const int64_t sums = other ? 3 : 2;
  std::vector<scalar_t> partial(size_t(chunks * sums * width), scalar_t(0));
  auto body = [&](int64_t first, int64_t last) {
    for (int64_t chunk = first; chunk < last; ++chunk) {
      scalar_t* __restrict__ bias_sum = partial.data() + chunk * sums * width;
      scalar_t* __restrict__ gain_sum = bias_sum + width;
      scalar_t* __restrict__ other_sum = other ? bias_sum + 2 * width : nullptr;
      const int64_t begin = rows * chunk / chunks, end = rows * (chunk + 1) / chunks;
      for (int64_t row = begin; row < end; ++row) {
        scalar_t* __restrict__ g = grad + row * width;
        const scalar_t* __restrict__ n = normalized + row * width;
        const scalar_t* __restrict__ w = gain;
        scalar_t sum = 0, sum_n = 0;
        _Pragma("omp simd reduction(+ : sum, sum_n)")
        for (int64_t j = 0; j < width; ++j) {
          const scalar_t scaled = g[j] * w[j];
          bias_sum[j] += g[j];
          gain_sum[j] += g[j] * n[j];
          sum += scaled;
          sum_n += scaled * n[j];
        }
        if (other_sum) {
          const scalar_t* __restrict__ o = other + row * width;
          RNNKIT_SIMD
          for (int64_t j = 0; j < width; ++j) other_sum[j] += g[j] * o[j];
        }
        const scalar_t mean_g = sum / scalar_t(width), mean_gn = sum_n / scalar_t(width);
        const scalar_t r = rstd[row];
        RNNKIT_SIMD
        for (int64_t j = 0; j < width; ++j) g[j] = r * (g[j] * w[j] - mean_g - n[j] * mean_gn);
      }
    }
  };
  if (parallel) {
    at::parallel_for(0, chunks, 1, body);
  } else {
    body(0, 1);
  }
  for (int64_t j = 0; j < width; ++j) {
    scalar_t bias_total = 0, gain_total = 0, other_total = 0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const scalar_t* part = partial.data() + chunk * sums * width;
      bias_total += part[j];
      gain_total += part[width + j];
      if (other) other_total += part[2 * width + j];
    }
    sum_grad[j] = bias_total;
    sum_normalized[j] = gain_total;
    if (other) sum_other[j] = other_total;
  }
}

// Variational dropout's input to the first step's GEMM: h_0 * mask, over this thread's rows and
// units, then the team waits for all of it (later steps drop h_t as they write it).
template <typename scalar_t>
inline void drop_first_state(const UnitRange& units, int64_t hidden, const scalar_t* hiddens,
                             const scalar_t* recurrent_mask, scalar_t* dropped_inputs) {
  for (int64_t row = units.row_begin; row < units.row_end; ++row) {
    scalar_t* __restrict__ dropped = dropped_inputs + row * hidden;
    const scalar_t* __restrict__ h = hiddens + row * hidden;
    const scalar_t* __restrict__ keep = recurrent_mask + row * hidden;
    RNNKIT_SIMD
    for (int64_t j = units.begin; j < units.end; ++j) dropped[j] = h[j] * keep[j];
  }
  units.barrier();
}

// dL/dh_t of one row's units [begin, end), assembled in `carry` (which holds what skipped W_hh):
// plus what came back through W_hh when `through` is given (times the recurrent-dropout mask
// `keep`, when there is one), plus the output's gradient `out` while the row runs; `seen`, when
// given, records it for the internals (zero once the sequence has finished). After the loop,
// over all N x H at once, it gives dL/dh_0.
template <typename scalar_t>
inline void assemble_hidden_grad(scalar_t* __restrict__ carry,
                                 const scalar_t* __restrict__ through,
                                 const scalar_t* __restrict__ keep,
                                 const scalar_t* __restrict__ out, scalar_t* __restrict__ seen,
                                 bool runs, int64_t begin, int64_t end) {
  if (through != nullptr && keep != nullptr) {
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) carry[j] += through[j] * keep[j];
  } else if (through != nullptr) {
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) carry[j] += through[j];
  }
  if (runs && out != nullptr) {
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) carry[j] += out[j];
  }
  if (seen != nullptr) {
    for (int64_t j = begin; j < end; ++j) seen[j] = runs ? carry[j] : scalar_t(0);
  }
}

// Zoneout shares, one row of H per (step, batch row). Training masks are [T, N, H]; in eval
// the layer passes the expectation p expanded from one element, kept here as one row with
// row stride 0 (no [T, N, H] copy); an absent zoneout is a row of zeros (lerp by 0 is exact).
template <typename scalar_t>
struct ZoneRows {
  Tensor storage;
  const scalar_t* data = nullptr;
  int64_t row_stride = 0;
  const scalar_t* at(int64_t step_row) const { return data + step_row * row_stride; }
};

template <typename scalar_t>
inline ZoneRows<scalar_t> zone_rows(const OptionalTensor& zone, int64_t hidden,
                                    const at::TensorOptions& options) {
  ZoneRows<scalar_t> rows;
  const Tensor* given = get(zone);
  if (given == nullptr) {
    rows.storage = at::zeros({hidden}, options);
  } else if (given->stride(0) == 0 && given->stride(1) == 0) {
    rows.storage = given->select(0, 0).select(0, 0).contiguous();
  } else {
    rows.storage = given->contiguous();
    rows.row_stride = hidden;
  }
  rows.data = rows.storage.template data_ptr<scalar_t>();
  return rows;
}

inline Tensor contiguous_or_empty(const OptionalTensor& tensor) {
  return get(tensor) ? tensor->contiguous() : Tensor();
}

template <typename scalar_t>
inline const scalar_t* pointer(const Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<scalar_t>() : nullptr;
}

template <typename scalar_t>
inline scalar_t* mutable_pointer(Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<scalar_t>() : nullptr;
}

std::vector<Tensor> lstm_variant_forward(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& weight_ih,
    const Tensor& weight_hh, const OptionalTensor& bias, const OptionalTensor& ln_ih_weight,
    const OptionalTensor& ln_ih_bias, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& ln_hh_bias, const OptionalTensor& ln_cell_weight,
    const OptionalTensor& ln_cell_bias, const OptionalTensor& peephole,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& zone_c, bool coupled, const OptionalTensor& mask);
std::vector<Tensor> lstm_variant_backward(
    const OptionalTensor& grad_output, const OptionalTensor& grad_h_n,
    const OptionalTensor& grad_c_n, const Tensor& x, const Tensor& weight_ih,
    const Tensor& weight_hh, const Tensor& hiddens, const Tensor& cells, const Tensor& new_cells,
    const Tensor& gates, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& ln_cell_weight, const OptionalTensor& ln_cell_bias,
    const OptionalTensor& normalized_ih, const OptionalTensor& rstd_ih,
    const OptionalTensor& normalized_hh, const OptionalTensor& rstd_hh,
    const OptionalTensor& normalized_cell, const OptionalTensor& rstd_cell,
    const OptionalTensor& peephole, const OptionalTensor& recurrent_mask,
    const OptionalTensor& zone_h, const OptionalTensor& zone_c, bool coupled,
    const OptionalTensor& mask, bool record, bool has_bias, std::vector<bool> needs);

// The GRU and RNN variants (gru_variants*.cpp, rnn_variants.cpp).
std::vector<Tensor> gru_variant_forward(
    const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
    const OptionalTensor& bias_ih, const OptionalTensor& bias_hh,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_ih_bias,
    const OptionalTensor& ln_hh_weight, const OptionalTensor& ln_hh_bias,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& mask);
std::vector<Tensor> gru_variant_backward(
    const OptionalTensor& grad_output, const OptionalTensor& grad_h_n, const Tensor& x,
    const Tensor& weight_ih, const Tensor& weight_hh, const Tensor& hiddens,
    const Tensor& gates, const Tensor& hidden_new, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& normalized_ih, const OptionalTensor& rstd_ih,
    const OptionalTensor& normalized_hh, const OptionalTensor& rstd_hh,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& mask, bool record, bool has_bias, std::vector<bool> needs);
std::vector<Tensor> rnn_variant_forward(const Tensor& x, const Tensor& h0,
                                        const Tensor& weight_ih, const Tensor& weight_hh,
                                        const OptionalTensor& bias, bool relu,
                                        const OptionalTensor& recurrent_mask,
                                        const OptionalTensor& zone_h,
                                        const OptionalTensor& mask);
std::vector<Tensor> rnn_variant_backward(
    const OptionalTensor& grad_output, const OptionalTensor& grad_h_n, const Tensor& x,
    const Tensor& weight_ih, const Tensor& weight_hh, const Tensor& hiddens,
    const Tensor& new_hiddens, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& mask, bool relu, bool record, bool has_bias,
    std::vector<bool> needs);

}  // namespace rnnkit
