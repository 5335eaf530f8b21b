// The GRU with its variants (layer norm on the two 3H pre-activation blocks, zoneout on h,
// recurrent dropout), forward through time: the loop of bptt/gru_variants.py, torch's GRU
// (n = tanh(x_n + r * h_n)). Each loop is templated on <kLayerNorm, kZoneout, kDropout>, chosen
// once per call, so every combination compiles to its own pass; the ragged mask is a per-row
// branch outside the inner loops. The backward is in gru_variants_backward.cpp.
//
// Shapes (see common.h; G = 3H in the order reset, update, new):
//   gates            [T, N, 3H]  the input projection (with layer norm LN_ih of it + b_ih), then
//                                the post-activation gates
//   hiddens          [T + 1, N, H]  states after zoneout and the ragged hold
//   hidden_new       [T, N, H]   the new block from h', LN_hh(W_hh h')_n + b_hn: what the reset
//                                gate multiplies
//   recurrent_inputs [T, N, H]   h_{t-1} * recurrent_mask (recurrent dropout only)
//   normalized_ih/hh [T, N, 3H], rstd_ih/hh [T, N]   (layer norm only)
//   recurrent_mask [N, H], zone_h [T, N, H]
#include "variants.h"

namespace rnnkit {

namespace {

template <typename scalar_t>
struct GRUVariantData {
  int64_t steps = 0, batch = 0, hidden = 0;
  scalar_t* gates = nullptr;
  scalar_t* hiddens = nullptr;
  scalar_t* hidden_new = nullptr;
  scalar_t* from_hidden = nullptr;       // [N, 3H] one step's h' W_hh^T
  scalar_t* recurrent_inputs = nullptr;  // [T, N, H] or null
  const scalar_t* recurrent_mask = nullptr;
  ZoneRows<scalar_t> zone_h;
  scalar_t* normalized_hh = nullptr;
  scalar_t* rstd_hh = nullptr;
  const scalar_t* ln_hh_weight = nullptr;
  const scalar_t* ln_hh_bias = nullptr;
  const scalar_t* input_bias = nullptr;   // [3H] b_ih (zeros without bias; unused with LN)
  const scalar_t* hidden_bias = nullptr;  // [3H] b_hh (zeros without bias)
  const scalar_t* mask = nullptr;
  const scalar_t* weight_hh = nullptr;
  int threads = 1;  // the team running the time loop
};

template <typename scalar_t, bool kLayerNorm, bool kZoneout, bool kDropout>
void forward_loop(const GRUVariantData<scalar_t>& d) {
  const int64_t batch = d.batch, hidden = d.hidden, width = 3 * hidden;
  // the gate math of units [begin, end) of one row at step t (with layer norm: the whole row)
  auto gate_math = [&](int64_t t, int64_t row, int64_t begin, int64_t end) RNNKIT_FLATTEN {
    const int64_t step_row = t * batch + row;
    scalar_t* __restrict__ from_h = d.from_hidden + row * width;
    const scalar_t* __restrict__ hidden_bias = d.hidden_bias;
    if constexpr (kLayerNorm) {  // LN_hh over the 3H pre-activations from h', then + b_hh
      scalar_t* __restrict__ kept = d.normalized_hh + step_row * width;
      const scalar_t* __restrict__ gain = d.ln_hh_weight;
      const scalar_t* __restrict__ shift = d.ln_hh_bias;
      const auto [mean, rstd] = row_statistics<scalar_t>(from_h, width);
      d.rstd_hh[step_row] = rstd;
      RNNKIT_SIMD
      for (int64_t j = 0; j < width; ++j) {
        const scalar_t n = (from_h[j] - mean) * rstd;
        kept[j] = n;
        from_h[j] = (n * gain[j] + shift[j]) + hidden_bias[j];
      }
    }
    scalar_t* __restrict__ reset = d.gates + step_row * width;  // from x, then the gates
    scalar_t* __restrict__ update = reset + hidden;
    scalar_t* __restrict__ candidate = reset + 2 * hidden;
    const scalar_t* __restrict__ input_bias = d.input_bias;
    scalar_t* __restrict__ saved = d.hidden_new + step_row * hidden;
    const scalar_t* __restrict__ h_old = d.hiddens + step_row * hidden;
    scalar_t* __restrict__ h_new = d.hiddens + (step_row + batch) * hidden;
    const scalar_t* __restrict__ zone = d.zone_h.at(step_row);
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) {
      scalar_t input_reset = reset[j], input_update = update[j], input_new = candidate[j];
      scalar_t hidden_reset = from_h[j], hidden_update = from_h[hidden + j];
      scalar_t hidden_new = from_h[2 * hidden + j];
      if constexpr (!kLayerNorm) {  // with layer norm both biases came after their LN
        input_reset += input_bias[j];
        input_update += input_bias[hidden + j];
        input_new += input_bias[2 * hidden + j];
        hidden_reset += hidden_bias[j];
        hidden_update += hidden_bias[hidden + j];
        hidden_new += hidden_bias[2 * hidden + j];
      }
      const scalar_t r = sigmoid(input_reset + hidden_reset);
      const scalar_t z = sigmoid(input_update + hidden_update);
      const scalar_t n = tanh_(input_new + r * hidden_new);
      reset[j] = r;
      update[j] = z;
      candidate[j] = n;
      saved[j] = hidden_new;
      const scalar_t h = n + z * (h_old[j] - n);  // (1 - z) n + z h
      if constexpr (kZoneout) {
        h_new[j] = h + zone[j] * (h_old[j] - h);  // lerp(h, h_{t-1}, zone)
      } else {
        h_new[j] = h;
      }
    }
    if (!running(d.mask, t, batch, row)) {  // finished: hold the state
      std::memcpy(h_new + begin, h_old + begin, sizeof(scalar_t) * (end - begin));
    }
    if constexpr (kDropout) {  // h_t * mask, the next GEMM's input
      if (t + 1 < d.steps) {
        scalar_t* __restrict__ dropped = d.recurrent_inputs + (step_row + batch) * hidden;
        const scalar_t* __restrict__ keep = d.recurrent_mask + row * hidden;
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) dropped[j] = h_new[j] * keep[j];
      }
    }
  };
  // a team of threads (see on_unit_ranges): with enough sequences each runs its own through
  // every step, no barriers; else each owns hidden units, its columns of the three blocks in the
  // GEMM and its units' gate math, and as layer norm needs whole rows, there the gate math is
  // split by rows and a step takes a second barrier
  on_unit_ranges(d.threads, hidden, [&](UnitRange units) {
    const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden, d.weight_hh, hidden,
                                              true, 3, hidden, units);
    const int64_t first = units.row_begin;
    const auto [first_row, last_row] = units.rows(batch);
    if constexpr (kDropout) {  // variational dropout: one mask for every step
      drop_first_state(units, hidden, d.hiddens, d.recurrent_mask, d.recurrent_inputs);
    }
    for (int64_t t = 0; t < d.steps; ++t) {
      const scalar_t* gemm_input =
          (kDropout ? d.recurrent_inputs : d.hiddens) + (t * batch + first) * hidden;
      recurrent.run(gemm_input, hidden, scalar_t(0), d.from_hidden + first * width,
                    width);  // h' W_hh^T
      if constexpr (kLayerNorm) {
        units.barrier();  // LN_hh reads whole rows
        for (int64_t row = first_row; row < last_row; ++row) gate_math(t, row, 0, hidden);
      } else {
        for (int64_t row = first; row < units.row_end; ++row)
          gate_math(t, row, units.begin, units.end);
      }
      units.barrier();  // all of h_t before the next step's GEMM
    }
  }, batch);
}

}  // namespace

std::vector<Tensor> gru_variant_forward(
    const Tensor& x_in, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh_in,
    const OptionalTensor& bias_ih, const OptionalTensor& bias_hh,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_ih_bias,
    const OptionalTensor& ln_hh_weight, const OptionalTensor& ln_hh_bias,
    const OptionalTensor& recurrent_mask_in, const OptionalTensor& zone_h,
    const OptionalTensor& mask_in) {
  const Tensor x = x_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = h0.size(1), width = 3 * hidden;
  const auto options = x.options();
  const bool layer_norm = get(ln_ih_weight) != nullptr;
  const bool zoneout = get(zone_h) != nullptr;
  Tensor hiddens = at::empty({steps + 1, batch, hidden}, options);  // h_0 .. h_T
  Tensor gates = at::empty({steps, batch, width}, options);
  Tensor hidden_new = at::empty({steps, batch, hidden}, options);
  Tensor from_hidden = at::empty({batch, width}, options);
  hiddens[0].copy_(h0);
  const Tensor recurrent_mask = contiguous_or_empty(recurrent_mask_in);
  const bool dropout = recurrent_mask.defined();
  Tensor recurrent_inputs = dropout ? at::empty({steps, batch, hidden}, options) : Tensor();
  Tensor normalized_ih, rstd_ih, normalized_hh, rstd_hh;
  if (layer_norm) {
    normalized_ih = at::empty({steps, batch, width}, options);
    rstd_ih = at::empty({steps, batch}, options);
    normalized_hh = at::empty({steps, batch, width}, options);
    rstd_hh = at::empty({steps, batch}, options);
  }
  Tensor gates_flat = gates.view({steps * batch, width});
  input_projection(gates_flat, x.view({steps * batch, features}), weight_ih, nullptr);
  const Tensor zeros = at::zeros({width}, options);
  const Tensor input_bias = get(bias_ih) ? bias_ih->contiguous() : zeros;
  const Tensor hidden_bias = get(bias_hh) ? bias_hh->contiguous() : zeros;
  const Tensor ln_ih_w = contiguous_or_empty(ln_ih_weight);
  const Tensor ln_ih_b = contiguous_or_empty(ln_ih_bias);
  const Tensor ln_hh_w = contiguous_or_empty(ln_hh_weight);
  const Tensor ln_hh_b = contiguous_or_empty(ln_hh_bias);
  const Tensor mask = contiguous_or_empty(mask_in);
  const int threads = team_size(batch * width * hidden, hidden);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_variant_forward", [&] {
    if (layer_norm) {  // LN_ih over all T * N rows at once, then + b_ih
      layer_norm_rows<scalar_t>(gates.data_ptr<scalar_t>(), steps * batch, width,
                                ln_ih_w.data_ptr<scalar_t>(), ln_ih_b.data_ptr<scalar_t>(),
                                input_bias.data_ptr<scalar_t>(),
                                normalized_ih.data_ptr<scalar_t>(), rstd_ih.data_ptr<scalar_t>());
    }
    GRUVariantData<scalar_t> d;
    d.steps = steps;
    d.batch = batch;
    d.hidden = hidden;
    d.gates = gates.data_ptr<scalar_t>();
    d.hiddens = hiddens.data_ptr<scalar_t>();
    d.hidden_new = hidden_new.data_ptr<scalar_t>();
    d.from_hidden = from_hidden.data_ptr<scalar_t>();
    d.recurrent_inputs = mutable_pointer<scalar_t>(recurrent_inputs);
    d.recurrent_mask = pointer<scalar_t>(recurrent_mask);
    d.zone_h = zone_rows<scalar_t>(zone_h, hidden, options);
    d.normalized_hh = mutable_pointer<scalar_t>(normalized_hh);
    d.rstd_hh = mutable_pointer<scalar_t>(rstd_hh);
    d.ln_hh_weight = pointer<scalar_t>(ln_hh_w);
    d.ln_hh_bias = pointer<scalar_t>(ln_hh_b);
    d.input_bias = input_bias.data_ptr<scalar_t>();
    d.hidden_bias = hidden_bias.data_ptr<scalar_t>();
    d.mask = pointer<scalar_t>(mask);
    d.weight_hh = weight_hh.data_ptr<scalar_t>();
    d.threads = threads;
    with_flag(layer_norm, [&](auto norm) {
      with_flag(zoneout, [&](auto zone) {
        with_flag(dropout, [&](auto drop) {
          forward_loop<scalar_t, decltype(norm)::value, decltype(zone)::value,
                       decltype(drop)::value>(d);
        });
      });
    });
  });
  return {hiddens, gates, hidden_new, recurrent_inputs, normalized_ih, rstd_ih, normalized_hh,
          rstd_hh};
}

}  // namespace rnnkit
