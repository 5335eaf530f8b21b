// The backward through time of the GRU variants (gru_variants.cpp): the reverse loop of
// bptt/gru_variants.py, templated on <kLayerNorm, kZoneout, kDropout>.
//
// Per step: one fused pass per batch row (zoneout split, the gate gradients, with layer norm
// the LN_hh backward of the row), then one GEMM through W_hh. Without recurrent dropout that GEMM
// adds straight into dL/dh_{t-1} (`carry`); with it, into a preallocated [N, H] buffer that the
// next step multiplies by the mask. After the loop: the LN_ih backward over all steps at once
// with the parameters' column sums, and time-batched weight-gradient GEMMs.
//
// Buffers (shapes as in gru_variants.cpp):
//   grad_from_input  [T, N, 3H]  dL/d(LN_ih(W_ih x) + b_ih), afterwards (layer norm) overwritten
//                                by dL/d(W_ih x), the LN_ih backward of it
//   grad_from_hidden [T, N, 3H]  dL/d(LN_hh(W_hh h') + b_hh): the reset and update blocks equal
//                                grad_from_input's, the new block is r times it
//   grad_product     [T, N, 3H]  dL/d(W_hh h'), the LN_hh backward of grad_from_hidden (LN only)
#include "variants.h"

namespace rnnkit {

namespace {

template <typename scalar_t>
struct GRUVariantGrads {
  int64_t steps = 0, batch = 0, hidden = 0;
  const scalar_t* gates = nullptr;
  const scalar_t* hiddens = nullptr;
  const scalar_t* hidden_new = nullptr;
  const scalar_t* normalized_hh = nullptr;
  const scalar_t* rstd_hh = nullptr;
  const scalar_t* ln_hh_weight = nullptr;
  const scalar_t* recurrent_mask = nullptr;
  ZoneRows<scalar_t> zone_h;
  const scalar_t* mask = nullptr;
  const scalar_t* grad_output = nullptr;
  const scalar_t* weight_hh = nullptr;
  scalar_t* grad_from_input = nullptr;
  scalar_t* grad_from_hidden = nullptr;
  scalar_t* grad_product = nullptr;
  scalar_t* carry_h = nullptr;    // [N, H] dL/dh_t, then what of it skips W_hh
  scalar_t* through_w = nullptr;  // [N, H] the GEMM's dL/dh'_t (recurrent dropout)
  scalar_t* hidden_grads = nullptr;
};

template <typename scalar_t, bool kLayerNorm, bool kZoneout, bool kDropout>
void backward_loop(const GRUVariantGrads<scalar_t>& d) {
  const int64_t batch = d.batch, hidden = d.hidden, width = 3 * hidden;
  // dL/d(pre-activations) of units [begin, end) of one row at step t (layer norm: whole row)
  auto gate_grads = [&](int64_t t, int64_t row, int64_t begin, int64_t end) RNNKIT_FLATTEN {
    const int64_t step_row = t * batch + row, at_row = step_row * hidden;
    const int64_t at_gates = step_row * width;
    scalar_t* __restrict__ carry = d.carry_h + row * hidden;
    const bool runs = running(d.mask, t, batch, row);
    assemble_hidden_grad(carry, kDropout ? d.through_w + row * hidden : nullptr,
                         kDropout ? d.recurrent_mask + row * hidden : nullptr,
                         d.grad_output ? d.grad_output + at_row : nullptr,
                         d.hidden_grads ? d.hidden_grads + at_row : nullptr, runs, begin, end);
    scalar_t* __restrict__ input_reset = d.grad_from_input + at_gates;
    scalar_t* __restrict__ input_update = input_reset + hidden;
    scalar_t* __restrict__ input_new = input_reset + 2 * hidden;
    scalar_t* __restrict__ hidden_reset = d.grad_from_hidden + at_gates;
    scalar_t* __restrict__ hidden_update = hidden_reset + hidden;
    scalar_t* __restrict__ hidden_new_grad = hidden_reset + 2 * hidden;
    if (!runs) {  // held: the gradient passes as it is (it stays in carry)
      for (int64_t block = 0; block < 3; ++block) {
        const int64_t offset = block * hidden + begin, count = end - begin;
        std::memset(input_reset + offset, 0, sizeof(scalar_t) * count);
        std::memset(hidden_reset + offset, 0, sizeof(scalar_t) * count);
      }
      if constexpr (kLayerNorm) std::memset(d.grad_product + at_gates, 0, sizeof(scalar_t) * width);
      return;
    }
    const scalar_t* __restrict__ reset = d.gates + at_gates;
    const scalar_t* __restrict__ update = reset + hidden;
    const scalar_t* __restrict__ candidate = reset + 2 * hidden;
    const scalar_t* __restrict__ h_old = d.hiddens + at_row;
    const scalar_t* __restrict__ from_h_new = d.hidden_new + at_row;
    const scalar_t* __restrict__ zone = d.zone_h.at(step_row);
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) {
      scalar_t dh = carry[j], kept_by_zoneout = 0;
      if constexpr (kZoneout) {
        kept_by_zoneout = dh * zone[j];
        dh = dh * (1 - zone[j]);
      }
      const scalar_t r = reset[j], z = update[j], n = candidate[j];
      const scalar_t grad_new = dh * (1 - z) * (1 - n * n);
      const scalar_t grad_update = dh * (h_old[j] - n) * (z * (1 - z));
      const scalar_t grad_reset = grad_new * from_h_new[j] * (r * (1 - r));
      input_reset[j] = hidden_reset[j] = grad_reset;
      input_update[j] = hidden_update[j] = grad_update;
      input_new[j] = grad_new;
      hidden_new_grad[j] = grad_new * r;
      carry[j] = dh * z + kept_by_zoneout;  // the GEMM (or the next step) adds the path via W_hh
    }
    if constexpr (kLayerNorm) {  // LN_hh backward: dL/d(W_hh h')
      layer_norm_row_backward(hidden_reset, d.ln_hh_weight, d.normalized_hh + at_gates,
                              d.rstd_hh[step_row], width, d.grad_product + at_gates);
    }
  };
  // a team of threads (see on_unit_ranges): with enough sequences each runs its own through
  // every step, no barriers; else each owns hidden units, its units' gate gradients and its
  // columns of dL/dh'_{t-1}, and as layer norm needs whole rows, there the row pass is split by
  // rows and a step takes a second barrier
  const int threads = team_size(batch * width * hidden, hidden);
  on_unit_ranges(threads, hidden, [&](UnitRange units) {
    // (N, 3H) @ W_hh (3H, H), this thread's columns
    const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), width, d.weight_hh, hidden,
                                              false, 1, hidden, units);
    const int64_t first = units.row_begin;
    const auto [first_row, last_row] = units.rows(batch);
    const scalar_t* gemm_input = kLayerNorm ? d.grad_product : d.grad_from_hidden;
    scalar_t* gemm_output = (kDropout ? d.through_w : d.carry_h) + first * hidden;
    for (int64_t t = d.steps - 1; t >= 0; --t) {
      if constexpr (kLayerNorm) {
        for (int64_t row = first_row; row < last_row; ++row) gate_grads(t, row, 0, hidden);
      } else {
        for (int64_t row = first; row < units.row_end; ++row)
          gate_grads(t, row, units.begin, units.end);
      }
      units.barrier();  // all of dL/d(W_hh h') at t before the GEMM reads it
      recurrent.run(gemm_input + (t * batch + first) * width, width,
                    scalar_t(kDropout ? 0 : 1), gemm_output, hidden);
      if constexpr (kLayerNorm) units.barrier();  // the next row pass reads whole rows of it
    }
  }, batch);
  if constexpr (kDropout) {  // dL/dh_0 = what skipped W_hh + (through W_hh) * mask
    assemble_hidden_grad<scalar_t>(d.carry_h, d.through_w, d.recurrent_mask, nullptr,
                                   nullptr, true, 0, batch * hidden);
  }
}

}  // namespace

std::vector<Tensor> gru_variant_backward(
    const OptionalTensor& grad_output_in, const OptionalTensor& grad_h_n, const Tensor& x,
    const Tensor& weight_ih, const Tensor& weight_hh_in, const Tensor& hiddens,
    const Tensor& gates, const Tensor& hidden_new, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& normalized_ih, const OptionalTensor& rstd_ih,
    const OptionalTensor& normalized_hh, const OptionalTensor& rstd_hh,
    const OptionalTensor& recurrent_mask_in, const OptionalTensor& zone_h,
    const OptionalTensor& mask_in, bool record, bool has_bias, std::vector<bool> needs) {
  const Tensor weight_hh = weight_hh_in.contiguous();
  const int64_t steps = gates.size(0), batch = gates.size(1), width = gates.size(2);
  const int64_t hidden = width / 3, rows = steps * batch;
  const auto options = gates.options();
  const bool layer_norm = get(ln_ih_weight) != nullptr;
  const Tensor recurrent_mask = contiguous_or_empty(recurrent_mask_in);
  const bool dropout = recurrent_mask.defined();
  Tensor grad_from_input = scratch(kScratchGates, {steps, batch, width}, options);
  Tensor grad_from_hidden = scratch(kScratchGates2, {steps, batch, width}, options);
  Tensor grad_product = layer_norm ? scratch(kScratchGates3, {steps, batch, width}, options)
                                   : Tensor();
  Tensor carry_h = get(grad_h_n) ? grad_h_n->contiguous().clone()
                                 : at::zeros({batch, hidden}, options);
  Tensor through_w = dropout ? at::zeros({batch, hidden}, options) : Tensor();
  Tensor hidden_grads = record ? at::empty({steps, batch, hidden}, options) : Tensor();
  const Tensor grad_output = contiguous_or_empty(grad_output_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  const Tensor ln_ih_w = contiguous_or_empty(ln_ih_weight);
  const Tensor ln_hh_w = contiguous_or_empty(ln_hh_weight);
  const Tensor n_ih = contiguous_or_empty(normalized_ih), n_hh = contiguous_or_empty(normalized_hh);
  const Tensor r_ih = contiguous_or_empty(rstd_ih), r_hh = contiguous_or_empty(rstd_hh);
  Tensor grad_bias_ih, grad_bias_hh, grad_ln_ih_w, grad_ln_ih_b, grad_ln_hh_w, grad_ln_hh_b;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_variant_backward", [&] {
    GRUVariantGrads<scalar_t> d;
    d.steps = steps;
    d.batch = batch;
    d.hidden = hidden;
    d.gates = gates.data_ptr<scalar_t>();
    d.hiddens = hiddens.data_ptr<scalar_t>();
    d.hidden_new = hidden_new.data_ptr<scalar_t>();
    d.normalized_hh = pointer<scalar_t>(n_hh);
    d.rstd_hh = pointer<scalar_t>(r_hh);
    d.ln_hh_weight = pointer<scalar_t>(ln_hh_w);
    d.recurrent_mask = pointer<scalar_t>(recurrent_mask);
    d.zone_h = zone_rows<scalar_t>(zone_h, hidden, options);
    d.mask = pointer<scalar_t>(mask);
    d.grad_output = pointer<scalar_t>(grad_output);
    d.weight_hh = weight_hh.data_ptr<scalar_t>();
    d.grad_from_input = grad_from_input.data_ptr<scalar_t>();
    d.grad_from_hidden = grad_from_hidden.data_ptr<scalar_t>();
    d.grad_product = mutable_pointer<scalar_t>(grad_product);
    d.carry_h = carry_h.data_ptr<scalar_t>();
    d.through_w = mutable_pointer<scalar_t>(through_w);
    d.hidden_grads = mutable_pointer<scalar_t>(hidden_grads);
    with_flag(layer_norm, [&](auto norm) {
      with_flag(get(zone_h) != nullptr, [&](auto zone) {
        with_flag(dropout, [&](auto drop) {
          backward_loop<scalar_t, decltype(norm)::value, decltype(zone)::value,
                        decltype(drop)::value>(d);
        });
      });
    });
    // b_hh and LN_hh's bias receive dL/d(LN_hh(W_hh h') + b_hh); LN_hh's gain that times the
    // normalised pre-activation
    if (layer_norm || has_bias) {
      grad_bias_hh = column_sum_tensor<scalar_t>(rows, width, grad_from_hidden, nullptr);
    }
    if (layer_norm) {
      grad_ln_hh_w = column_sum_tensor<scalar_t>(rows, width, grad_from_hidden, &n_hh);
      // b_ih and LN_ih's bias receive dL/d(LN_ih(W_ih x) + b_ih), which then becomes dL/d(W_ih x)
      grad_bias_ih = at::empty({width}, options);
      grad_ln_ih_w = at::empty({width}, options);
      layer_norm_input_grads<scalar_t>(
          rows, width, grad_from_input.data_ptr<scalar_t>(), ln_ih_w.data_ptr<scalar_t>(),
          n_ih.data_ptr<scalar_t>(), r_ih.data_ptr<scalar_t>(), nullptr,
          grad_bias_ih.data_ptr<scalar_t>(), grad_ln_ih_w.data_ptr<scalar_t>(), nullptr);
    } else if (has_bias) {
      grad_bias_ih = column_sum_tensor<scalar_t>(rows, width, grad_from_input, nullptr);
    }
  });
  if (layer_norm) {
    grad_ln_ih_b = grad_bias_ih.clone();
    grad_ln_hh_b = grad_bias_hh.clone();
    if (!has_bias) grad_bias_ih = grad_bias_hh = Tensor();
  }
  Tensor grad_x, grad_weight_ih, grad_weight_hh;
  const Tensor flat_input = grad_from_input.view({rows, width});  // dL/d(W_ih x)
  if (needs[0]) grad_x = matrix_product(flat_input, weight_ih).view({steps, batch, x.size(2)});
  const Tensor inputs = (get(recurrent_inputs) ? *recurrent_inputs : hiddens.narrow(0, 0, steps))
                            .reshape({rows, hidden});
  const Tensor rows_ih = needs[1] || (needs[2] && !layer_norm) ? gradient_rows(grad_from_input)
                                                                : Tensor();
  if (needs[1]) grad_weight_ih = weight_gradient_from_rows(rows_ih, x);
  if (needs[2] && layer_norm) {
    grad_weight_hh = weight_gradient_from_rows(gradient_rows(grad_product, kScratchRows2), inputs);
  } else if (needs[2]) {
    // dL/d(W_hh h' + b_hh) equals dL/d(W_ih x + b_ih) in the reset and update blocks: one
    // transposed copy of those, and of the new block of each
    grad_weight_hh = at::empty({width, hidden}, options);
    Tensor shared = grad_weight_hh.narrow(0, 0, 2 * hidden);
    Tensor own = grad_weight_hh.narrow(0, 2 * hidden, hidden);
    matmul_into(shared, rows_ih.narrow(0, 0, 2 * hidden), inputs, false);
    matmul_into(own, gradient_rows(grad_from_hidden.narrow(2, 2 * hidden, hidden), kScratchRows2),
                inputs, false);
  }
  return {grad_x,       carry_h,      grad_weight_ih, grad_weight_hh, grad_bias_ih,
          grad_bias_hh, grad_ln_ih_w, grad_ln_ih_b,   grad_ln_hh_w,   grad_ln_hh_b,
          hidden_grads};
}

}  // namespace rnnkit
