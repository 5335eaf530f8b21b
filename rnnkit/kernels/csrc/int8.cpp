// int8 weights for inference: the LSTM, GRU and RNN forward with W_ih and W_hh as int8 rows and
// per-row float32 scales (rnnkit/quantize.py makes them), activations (x_t, h_{t-1}) quantized
// per row on the fly, the products on int8_gemm.h's kernels (AVX512-VNNI when the CPU has it and
// RNNKIT_NO_VNNI is unset, else the plain loop, same numbers); the state, the biases, the gate
// math and the LSTM's projection W_hr stay float32. No backward: the operators are inference
// only (the quantized layers refuse a graph before they get here).
//
// The input projection of every step is one int8 GEMM before the time loop; the loop runs on a
// team of threads that split the hidden units (or, with a large batch, the sequences), as the
// float kernels do: each thread quantizes h_{t-1} itself, computes its units' rows of every
// gate, their gate math and its share of h_t, then waits once for the others.
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <atomic>
#include <tuple>

#include "common.h"
#include "int8_gemm.h"

namespace rnnkit {
namespace {

std::atomic<int64_t> calls_vnni{0}, calls_plain{0};

enum Cell : int64_t { kLSTM = 0, kGRU = 1, kRNNTanh = 2, kRNNRelu = 3 };

int64_t blocks_of(int64_t cell) { return cell == kLSTM ? 4 : (cell == kGRU ? 3 : 1); }

int8::GemmFn chosen_gemm() {
  const bool vnni = int8::use_vnni();
  (vnni ? calls_vnni : calls_plain).fetch_add(1, std::memory_order_relaxed);
  return int8::gemm_for(vnni);
}

void check_weight(const Tensor& weight, const Tensor& scale, const Tensor& rowsum,
                  const char* name) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kChar, "rnnkit int8: ", name,
              " must be a 2-D int8 tensor, got ", weight.scalar_type(), " ", weight.sizes());
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == weight.size(0) &&
                  scale.scalar_type() == at::kFloat,
              "rnnkit int8: ", name, "'s scale must be float32 of shape (", weight.size(0), ")");
  TORCH_CHECK(rowsum.dim() == 1 && rowsum.size(0) == weight.size(0) &&
                  rowsum.scalar_type() == at::kInt,
              "rnnkit int8: ", name, "'s rowsum must be int32 of shape (", weight.size(0), ")");
}

// y [rows, M] = quantize(x [rows, K]) @ dequantize(weight [M, K])^T, over the cores by columns.
void linear_into(float* y, const float* x, int64_t rows, const Tensor& weight,
                 const Tensor& scale, const Tensor& rowsum, int8::GemmFn gemm) {
  const int64_t k = weight.size(1), m = weight.size(0), width = int8::padded(k);
  std::vector<uint8_t> u(static_cast<size_t>(rows * width));
  std::vector<float> a_scale(static_cast<size_t>(rows));
  int8::quantize_rows(x, k, rows, k, u.data(), a_scale.data());
  const int8_t* w = weight.data_ptr<int8_t>();
  const float* ws = scale.data_ptr<float>();
  const int32_t* rs = rowsum.data_ptr<int32_t>();
  const int64_t grain = std::max<int64_t>(16, kParallelMacs / std::max<int64_t>(1, rows * k));
  at::parallel_for(0, m, grain, [&](int64_t begin, int64_t end) {
    gemm(u.data(), a_scale.data(), rows, w + begin * k, ws + begin, rs + begin, end - begin, k,
         y + begin, m);
  });
}

Tensor int8_linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& scale_in,
                   const Tensor& rowsum_in) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  TORCH_CHECK(x_in.dim() == 2 && x_in.scalar_type() == at::kFloat,
              "rnnkit int8_linear: x must be a 2-D float32 tensor, got ", x_in.scalar_type(), " ",
              x_in.sizes());
  const Tensor weight = weight_in.contiguous(), scale = scale_in.contiguous(),
               rowsum = rowsum_in.contiguous(), x = x_in.contiguous();
  check_weight(weight, scale, rowsum, "weight");
  TORCH_CHECK(x.size(1) == weight.size(1), "rnnkit int8_linear: x has ", x.size(1),
              " features, the weight ", weight.size(1));
  Tensor y = at::empty({x.size(0), weight.size(0)}, x.options());
  if (x.size(0) > 0 && weight.size(0) > 0)
    linear_into(y.data_ptr<float>(), x.data_ptr<float>(), x.size(0), weight, scale, rowsum,
                chosen_gemm());
  return y;
}

std::tuple<Tensor, Tensor> int8_forward(
    const Tensor& x_in, const Tensor& h0_in, const OptionalTensor& c0_in,
    const Tensor& weight_ih_in, const Tensor& scale_ih_in, const Tensor& rowsum_ih_in,
    const Tensor& weight_hh_in, const Tensor& scale_hh_in, const Tensor& rowsum_hh_in,
    const OptionalTensor& bias_ih_in, const OptionalTensor& bias_hh_in,
    const OptionalTensor& weight_hr_in, int64_t cell, const OptionalTensor& mask_in) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  TORCH_CHECK(cell >= kLSTM && cell <= kRNNRelu, "rnnkit int8_forward: unknown cell ", cell);
  TORCH_CHECK(x_in.dim() == 3 && x_in.scalar_type() == at::kFloat,
              "rnnkit int8_forward: x must be float32 [T, N, I], got ", x_in.scalar_type(), " ",
              x_in.sizes());
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor weight_ih = weight_ih_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const Tensor scale_ih = scale_ih_in.contiguous(), scale_hh = scale_hh_in.contiguous();
  const Tensor rowsum_ih = rowsum_ih_in.contiguous(), rowsum_hh = rowsum_hh_in.contiguous();
  check_weight(weight_ih, scale_ih, rowsum_ih, "weight_ih");
  check_weight(weight_hh, scale_hh, rowsum_hh, "weight_hh");
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t out_size = h0.size(1), blocks = blocks_of(cell);
  const int64_t gate_rows = weight_ih.size(0), hidden = gate_rows / blocks;
  const bool lstm = cell == kLSTM, gru = cell == kGRU;
  const Tensor* hr = get(weight_hr_in);
  const Tensor weight_hr = hr ? hr->contiguous() : Tensor();
  TORCH_CHECK(gate_rows == blocks * hidden && weight_ih.size(1) == features &&
                  weight_hh.size(0) == gate_rows && weight_hh.size(1) == out_size,
              "rnnkit int8_forward: weights ", weight_ih.sizes(), " and ", weight_hh.sizes(),
              " do not fit x ", x.sizes(), " and h0 ", h0.sizes());
  TORCH_CHECK(h0.dim() == 2 && h0.size(0) == batch, "rnnkit int8_forward: h0 must be [N, P]");
  TORCH_CHECK(hr ? (weight_hr.size(0) == out_size && weight_hr.size(1) == hidden)
                 : out_size == hidden,
              "rnnkit int8_forward: the projection does not fit");
  const Tensor* c0p = get(c0_in);
  TORCH_CHECK(!lstm || (c0p && c0p->size(0) == batch && c0p->size(1) == hidden),
              "rnnkit int8_forward: the LSTM needs c0 [N, H]");
  const Tensor* mask_p = get(mask_in);
  const Tensor mask = mask_p ? mask_p->to(at::kFloat).contiguous() : Tensor();
  const float* mask_data = mask_p ? mask.data_ptr<float>() : nullptr;

  Tensor hiddens = at::empty({steps + 1, batch, out_size}, x.options());
  hiddens[0].copy_(h0);
  Tensor cells = lstm ? c0p->to(at::kFloat).contiguous().clone() : Tensor();
  Tensor pre = hr ? at::empty({batch, hidden}, x.options()) : Tensor();  // o * tanh(c), [N, H]
  const int8::GemmFn gemm = chosen_gemm();

  // every step's input projection, biases folded in (GRU: b_hh stays with the recurrent part)
  Tensor projected = at::empty({steps * batch, gate_rows}, x.options());
  float* gi = projected.data_ptr<float>();
  if (steps * batch > 0)
    linear_into(gi, x.data_ptr<float>(), steps * batch, weight_ih, scale_ih, rowsum_ih, gemm);
  const Tensor* b_ih = get(bias_ih_in);
  const Tensor* b_hh = get(bias_hh_in);
  Tensor folded;
  if (b_ih) folded = b_ih->to(at::kFloat).contiguous();
  if (b_hh && !gru) folded = folded.defined() ? folded + *b_hh : b_hh->to(at::kFloat);
  if (folded.defined()) projected.add_(folded.contiguous().view({1, gate_rows}));
  const Tensor bias_hh = (gru && b_hh) ? b_hh->to(at::kFloat).contiguous() : Tensor();
  const float* bhh = bias_hh.defined() ? bias_hh.data_ptr<float>() : nullptr;

  float* h_all = hiddens.data_ptr<float>();
  float* c_data = lstm ? cells.data_ptr<float>() : nullptr;
  float* pre_data = hr ? pre.data_ptr<float>() : nullptr;
  const float* hr_data = hr ? weight_hr.data_ptr<float>() : nullptr;
  const int8_t* whh = weight_hh.data_ptr<int8_t>();
  const float* shh = scale_hh.data_ptr<float>();
  const int32_t* rhh = rowsum_hh.data_ptr<int32_t>();
  const int64_t width = int8::padded(out_size);

  const int threads = team_size(batch * gate_rows * out_size, hidden);
  on_unit_ranges(threads, hidden, [&](const UnitRange& range) {
    const int64_t u0 = range.begin, units = range.end - range.begin;
    const int64_t r0 = range.row_begin, rows = range.row_count();
    std::vector<uint8_t> u(static_cast<size_t>(std::max<int64_t>(rows, 1) * width));
    std::vector<float> a_scale(static_cast<size_t>(std::max<int64_t>(rows, 1)));
    std::vector<float> gh(static_cast<size_t>(std::max<int64_t>(rows * blocks * units, 1)));
    const int64_t gh_stride = blocks * units;
    for (int64_t t = 0; t < steps; ++t) {
      const float* h_prev = h_all + t * batch * out_size;
      float* h_next = h_all + (t + 1) * batch * out_size;
      if (units > 0 && rows > 0) {
        int8::quantize_rows(h_prev + r0 * out_size, out_size, rows, out_size, u.data(),
                            a_scale.data());
        for (int64_t g = 0; g < blocks; ++g) {
          const int64_t row0 = g * hidden + u0;
          gemm(u.data(), a_scale.data(), rows, whh + row0 * out_size, shh + row0, rhh + row0,
               units, out_size, gh.data() + g * units, gh_stride);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t n = r0 + r;
          const bool on = running(mask_data, t, batch, n);
          const float* in = gi + (t * batch + n) * gate_rows;
          const float* rec = gh.data() + r * gh_stride;
          if (lstm) {
            float* c = c_data + n * hidden;
            for (int64_t j = 0; j < units; ++j) {
              const int64_t unit = u0 + j;
              const float i_g = sigmoid<float>(in[unit] + rec[j]);
              const float f_g = sigmoid<float>(in[hidden + unit] + rec[units + j]);
              const float g_g = tanh_<float>(in[2 * hidden + unit] + rec[2 * units + j]);
              const float o_g = sigmoid<float>(in[3 * hidden + unit] + rec[3 * units + j]);
              const float c_new = f_g * c[unit] + i_g * g_g;
              const float h_new = o_g * tanh_<float>(c_new);
              if (on) c[unit] = c_new;
              if (hr) {
                if (on) pre_data[n * hidden + unit] = h_new;
              } else {
                h_next[n * out_size + unit] = on ? h_new : h_prev[n * out_size + unit];
              }
            }
          } else if (gru) {
            for (int64_t j = 0; j < units; ++j) {
              const int64_t unit = u0 + j;
              const float b_r = bhh ? bhh[unit] : 0.0f, b_z = bhh ? bhh[hidden + unit] : 0.0f,
                          b_n = bhh ? bhh[2 * hidden + unit] : 0.0f;
              const float r_g = sigmoid<float>(in[unit] + rec[j] + b_r);
              const float z_g = sigmoid<float>(in[hidden + unit] + rec[units + j] + b_z);
              const float n_g = tanh_<float>(in[2 * hidden + unit] +
                                             r_g * (rec[2 * units + j] + b_n));
              const float h_old = h_prev[n * out_size + unit];
              h_next[n * out_size + unit] = on ? (1.0f - z_g) * n_g + z_g * h_old : h_old;
            }
          } else {
            for (int64_t j = 0; j < units; ++j) {
              const int64_t unit = u0 + j;
              const float a = in[unit] + rec[j];
              const float h_new = cell == kRNNRelu ? (a > 0.0f ? a : 0.0f) : tanh_<float>(a);
              h_next[n * out_size + unit] = on ? h_new : h_prev[n * out_size + unit];
            }
          }
        }
      }
      if (hr) {  // h_t = W_hr (o * tanh(c_t)), float32: every unit first, then this share of P
        range.barrier();
        const int64_t p0 = range.independent ? 0 : out_size * range.index / range.team;
        const int64_t p1 = range.independent ? out_size : out_size * (range.index + 1) / range.team;
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t n = r0 + r;
          const bool on = running(mask_data, t, batch, n);
          const float* p_in = pre_data + n * hidden;
          for (int64_t p = p0; p < p1; ++p) {
            if (!on) {
              h_next[n * out_size + p] = h_prev[n * out_size + p];
              continue;
            }
            const float* w = hr_data + p * hidden;
            float acc = 0.0f;
            RNNKIT_SIMD
            for (int64_t j = 0; j < hidden; ++j) acc += w[j] * p_in[j];
            h_next[n * out_size + p] = acc;
          }
        }
      }
      range.barrier();
    }
  }, batch);
  return std::make_tuple(hiddens, cells);
}

std::vector<int64_t> int8_calls() {
  return {calls_vnni.load(std::memory_order_relaxed), calls_plain.load(std::memory_order_relaxed)};
}

bool int8_vnni_available() { return int8::cpu_has_vnni(); }

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("int8_linear(Tensor x, Tensor weight, Tensor scale, Tensor rowsum) -> Tensor");
  m.def(
      "int8_forward(Tensor x, Tensor h0, Tensor? c0, Tensor weight_ih, Tensor scale_ih, "
      "Tensor rowsum_ih, Tensor weight_hh, Tensor scale_hh, Tensor rowsum_hh, Tensor? bias_ih, "
      "Tensor? bias_hh, Tensor? weight_hr, int cell, Tensor? mask) "
      "-> (Tensor hiddens, Tensor cells)");
  // [VNNI calls, plain calls] since the library loaded: which kernel ran (the tests read it)
  m.def("int8_calls() -> int[]", &int8_calls);
  m.def("int8_vnni_available() -> bool", &int8_vnni_available);
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("int8_linear", &int8_linear);
  m.impl("int8_forward", &int8_forward);
}

}  // namespace rnnkit
