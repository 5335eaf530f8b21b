// The vanilla RNN (tanh or relu) with zoneout on h and recurrent dropout, forward and backward
// through time: the loops of RNNVariantFunction in bptt/gru_variants.py. Each loop is templated
// on <kRelu, kZoneout, kDropout>, chosen once per call; the ragged mask is a per-row branch.
//
// Shapes (see common.h; G = H):
//   hiddens          [T + 1, N, H]  states after zoneout and the ragged hold
//   new_hiddens      [T, N, H]   act(x W_ih^T + h' W_hh^T + b) before zoneout: what the backward
//                                reads the slope from (without zoneout a view of hiddens[1:]:
//                                held rows differ there, but the backward never reads them)
//   recurrent_inputs [T, N, H]   h_{t-1} * recurrent_mask (recurrent dropout only)
//   bias [H] (b_ih + b_hh), recurrent_mask [N, H], zone_h [T, N, H]
#include "variants.h"

namespace rnnkit {

namespace {

template <typename scalar_t>
struct RNNVariantData {
  int64_t steps = 0, batch = 0, hidden = 0;
  scalar_t* hiddens = nullptr;
  scalar_t* new_hiddens = nullptr;  // first the input projection, then act(...) in place
  scalar_t* recurrent_inputs = nullptr;
  const scalar_t* recurrent_mask = nullptr;
  ZoneRows<scalar_t> zone_h;
  const scalar_t* bias = nullptr;  // [H], zeros without bias
  const scalar_t* mask = nullptr;
  const scalar_t* weight_hh = nullptr;
  // backward
  const scalar_t* grad_output = nullptr;
  scalar_t* grad_pre = nullptr;     // [T, N, H] dL/d(pre-activation)
  scalar_t* carry_h = nullptr;      // [N, H] dL/dh_t, then what of it skips W_hh
  scalar_t* through_w = nullptr;    // [N, H] the GEMM's dL/dh'_t (recurrent dropout)
  scalar_t* hidden_grads = nullptr;
  int threads = 1;
};

template <typename scalar_t, bool kRelu, bool kZoneout, bool kDropout>
void forward_loop(const RNNVariantData<scalar_t>& d) {
  const int64_t batch = d.batch, hidden = d.hidden;
  auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) RNNKIT_FLATTEN {
    const int64_t step_row = t * batch + row;
    // without zoneout `state` and `h_new` are the same memory: no restrict on them
    scalar_t* state = d.new_hiddens + step_row * hidden;
    scalar_t* h_new = d.hiddens + (step_row + batch) * hidden;
    const scalar_t* __restrict__ h_old = d.hiddens + step_row * hidden;
    const scalar_t* __restrict__ b = d.bias;
    const scalar_t* __restrict__ zone = d.zone_h.at(step_row);
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) {
      const scalar_t pre = state[j] + b[j];
      scalar_t h;
      if constexpr (kRelu) {
        h = pre > scalar_t(0) ? pre : scalar_t(0);
      } else {
        h = tanh_(pre);
      }
      state[j] = h;
      if constexpr (kZoneout) h_new[j] = h + zone[j] * (h_old[j] - h);  // lerp(h, h_{t-1}, zone)
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
  // a team of threads (see on_unit_ranges): its own sequences, or its own hidden units
  on_unit_ranges(d.threads, hidden, [&](UnitRange units) {
    const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden, d.weight_hh, hidden,
                                              true, 1, hidden, units);
    const int64_t first = units.row_begin;
    if constexpr (kDropout) {  // variational dropout: one mask for every step
      drop_first_state(units, hidden, d.hiddens, d.recurrent_mask, d.recurrent_inputs);
    }
    for (int64_t t = 0; t < d.steps; ++t) {
      const scalar_t* gemm_input =
          (kDropout ? d.recurrent_inputs : d.hiddens) + (t * batch + first) * hidden;
      recurrent.run(gemm_input, hidden, scalar_t(1), d.new_hiddens + (t * batch + first) * hidden,
                    hidden);  // (N, H) += h' W_hh^T
      for (int64_t row = first; row < units.row_end; ++row)
        step_row(t, row, units.begin, units.end);
      units.barrier();  // all of h_t before the next step's GEMM
    }
  }, batch);
}

template <typename scalar_t, bool kRelu, bool kZoneout, bool kDropout>
void backward_loop(const RNNVariantData<scalar_t>& d) {
  const int64_t batch = d.batch, hidden = d.hidden;
  auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) RNNKIT_FLATTEN {
    const int64_t at_row = (t * batch + row) * hidden;
    scalar_t* __restrict__ carry = d.carry_h + row * hidden;
    const bool runs = running(d.mask, t, batch, row);
    assemble_hidden_grad(carry, kDropout ? d.through_w + row * hidden : nullptr,
                         kDropout ? d.recurrent_mask + row * hidden : nullptr,
                         d.grad_output ? d.grad_output + at_row : nullptr,
                         d.hidden_grads ? d.hidden_grads + at_row : nullptr, runs, begin, end);
    scalar_t* __restrict__ pre = d.grad_pre + at_row;
    if (!runs) {  // held past the end: passes through as is (it stays in carry)
      std::memset(pre + begin, 0, sizeof(scalar_t) * (end - begin));
      return;
    }
    const scalar_t* __restrict__ h = d.new_hiddens + at_row;
    const scalar_t* __restrict__ zone = d.zone_h.at(t * batch + row);
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) {
      scalar_t dh = carry[j], kept_by_zoneout = 0;
      if constexpr (kZoneout) {
        kept_by_zoneout = dh * zone[j];
        dh = dh * (1 - zone[j]);
      }
      if constexpr (kRelu) {
        pre[j] = h[j] > scalar_t(0) ? dh : scalar_t(0);
      } else {
        pre[j] = dh * (1 - h[j] * h[j]);
      }
      carry[j] = kept_by_zoneout;  // the GEMM (or the next step) adds the path via W_hh
    }
  };
  // a team of threads (see on_unit_ranges): its own sequences, or its own hidden units
  on_unit_ranges(d.threads, hidden, [&](UnitRange units) {
    // (N, H) @ W_hh (H, H), the thread's rows or columns of the error one step back
    const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden, d.weight_hh, hidden,
                                              false, 1, hidden, units);
    const int64_t first = units.row_begin;
    scalar_t* gemm_output = (kDropout ? d.through_w : d.carry_h) + first * hidden;
    for (int64_t t = d.steps - 1; t >= 0; --t) {
      for (int64_t row = first; row < units.row_end; ++row)
        step_row(t, row, units.begin, units.end);
      units.barrier();  // all of dL/d(pre-activation) at t before the GEMM reads it
      recurrent.run(d.grad_pre + (t * batch + first) * hidden, hidden,
                    scalar_t(kDropout ? 0 : 1), gemm_output, hidden);  // read next by this thread
    }
  }, batch);
  if constexpr (kDropout) {  // dL/dh_0 = what skipped W_hh + (through W_hh) * mask
    assemble_hidden_grad<scalar_t>(d.carry_h, d.through_w, d.recurrent_mask, nullptr,
                                   nullptr, true, 0, batch * hidden);
  }
}

// fn() with the loop instantiated for the three flags
template <typename scalar_t, typename Fn>
void dispatch_flags(bool relu, bool zoneout, bool dropout, const Fn& fn) {
  with_flag(relu, [&](auto rectify) {
    with_flag(zoneout, [&](auto zone) {
      with_flag(dropout, [&](auto drop) {
        fn(rectify, zone, drop);
      });
    });
  });
}

}  // namespace

std::vector<Tensor> rnn_variant_forward(const Tensor& x_in, const Tensor& h0,
                                        const Tensor& weight_ih, const Tensor& weight_hh_in,
                                        const OptionalTensor& bias, bool relu,
                                        const OptionalTensor& recurrent_mask_in,
                                        const OptionalTensor& zone_h,
                                        const OptionalTensor& mask_in) {
  const Tensor x = x_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = h0.size(1);
  const auto options = x.options();
  const bool zoneout = get(zone_h) != nullptr;
  Tensor hiddens = at::empty({steps + 1, batch, hidden}, options);  // h_0 .. h_T
  hiddens[0].copy_(h0);
  Tensor new_hiddens = zoneout ? at::empty({steps, batch, hidden}, options)
                               : hiddens.narrow(0, 1, steps);
  const Tensor recurrent_mask = contiguous_or_empty(recurrent_mask_in);
  const bool dropout = recurrent_mask.defined();
  Tensor recurrent_inputs = dropout ? at::empty({steps, batch, hidden}, options) : Tensor();
  // every step's input projection in one GEMM, straight into new_hiddens
  Tensor projected = new_hiddens.view({steps * batch, hidden});
  input_projection(projected, x.view({steps * batch, features}), weight_ih, nullptr);
  const Tensor unit_bias = get(bias) ? bias->contiguous() : at::zeros({hidden}, options);
  const Tensor mask = contiguous_or_empty(mask_in);
  const int threads = team_size(batch * hidden * hidden, hidden);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_variant_forward", [&] {
    RNNVariantData<scalar_t> d;
    d.steps = steps;
    d.batch = batch;
    d.hidden = hidden;
    d.hiddens = hiddens.data_ptr<scalar_t>();
    d.new_hiddens = new_hiddens.data_ptr<scalar_t>();
    d.recurrent_inputs = mutable_pointer<scalar_t>(recurrent_inputs);
    d.recurrent_mask = pointer<scalar_t>(recurrent_mask);
    d.zone_h = zone_rows<scalar_t>(zone_h, hidden, options);
    d.bias = unit_bias.data_ptr<scalar_t>();
    d.mask = pointer<scalar_t>(mask);
    d.weight_hh = weight_hh.data_ptr<scalar_t>();
    d.threads = threads;
    dispatch_flags<scalar_t>(relu, zoneout, dropout, [&](auto rectify, auto zone, auto drop) {
      forward_loop<scalar_t, decltype(rectify)::value, decltype(zone)::value,
                   decltype(drop)::value>(d);
    });
  });
  return {hiddens, new_hiddens, recurrent_inputs};
}

std::vector<Tensor> rnn_variant_backward(
    const OptionalTensor& grad_output_in, const OptionalTensor& grad_h_n, const Tensor& x,
    const Tensor& weight_ih, const Tensor& weight_hh_in, const Tensor& hiddens,
    const Tensor& new_hiddens, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& recurrent_mask_in, const OptionalTensor& zone_h,
    const OptionalTensor& mask_in, bool relu, bool record, bool has_bias,
    std::vector<bool> needs) {
  const Tensor weight_hh = weight_hh_in.contiguous();
  const int64_t steps = hiddens.size(0) - 1, batch = hiddens.size(1), hidden = hiddens.size(2);
  const int64_t rows = steps * batch;
  const auto options = hiddens.options();
  const Tensor recurrent_mask = contiguous_or_empty(recurrent_mask_in);
  const bool dropout = recurrent_mask.defined();
  Tensor grad_pre = scratch(kScratchGates, {steps, batch, hidden}, options);
  Tensor carry_h = get(grad_h_n) ? grad_h_n->contiguous().clone()
                                 : at::zeros({batch, hidden}, options);
  Tensor through_w = dropout ? at::zeros({batch, hidden}, options) : Tensor();
  Tensor hidden_grads = record ? at::empty({steps, batch, hidden}, options) : Tensor();
  const Tensor grad_output = contiguous_or_empty(grad_output_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  const Tensor states = new_hiddens.contiguous();  // a view of hiddens[1:] is contiguous
  Tensor grad_bias;
  AT_DISPATCH_FLOATING_TYPES(hiddens.scalar_type(), "rnn_variant_backward", [&] {
    RNNVariantData<scalar_t> d;
    d.steps = steps;
    d.batch = batch;
    d.hidden = hidden;
    d.new_hiddens = const_cast<scalar_t*>(states.data_ptr<scalar_t>());  // only read here
    d.recurrent_mask = pointer<scalar_t>(recurrent_mask);
    d.zone_h = zone_rows<scalar_t>(zone_h, hidden, options);
    d.mask = pointer<scalar_t>(mask);
    d.weight_hh = weight_hh.data_ptr<scalar_t>();
    d.grad_output = pointer<scalar_t>(grad_output);
    d.grad_pre = grad_pre.data_ptr<scalar_t>();
    d.carry_h = carry_h.data_ptr<scalar_t>();
    d.through_w = mutable_pointer<scalar_t>(through_w);
    d.hidden_grads = mutable_pointer<scalar_t>(hidden_grads);
    d.threads = team_size(batch * hidden * hidden, hidden);
    dispatch_flags<scalar_t>(relu, get(zone_h) != nullptr, dropout,
                             [&](auto rectify, auto zone, auto drop) {
                               backward_loop<scalar_t, decltype(rectify)::value,
                                             decltype(zone)::value, decltype(drop)::value>(d);
                             });
    if (has_bias && needs[3]) {
      grad_bias = column_sum_tensor<scalar_t>(rows, hidden, grad_pre, nullptr);
    }
  });
  Tensor grad_x, grad_weight_ih, grad_weight_hh;
  const Tensor flat = grad_pre.view({rows, hidden});
  if (needs[0]) grad_x = matrix_product(flat, weight_ih).view({steps, batch, x.size(2)});
  const Tensor grad_rows = needs[1] || needs[2] ? gradient_rows(grad_pre) : Tensor();
  if (needs[1]) grad_weight_ih = weight_gradient_from_rows(grad_rows, x);
  if (needs[2]) {
    const Tensor inputs = get(recurrent_inputs) ? *recurrent_inputs : hiddens.narrow(0, 0, steps);
    grad_weight_hh = weight_gradient_from_rows(grad_rows, inputs);
  }
  return {grad_x, carry_h, grad_weight_ih, grad_weight_hh, grad_bias, hidden_grads};
}

}  // namespace rnnkit
