// Vanilla RNN (tanh or relu), forward and backward through time; the loop of bptt/rnn.py.
// Shapes: see common.h. G = H; no gates are saved, the backward needs only h_t.
#include "common.h"

namespace rnnkit {

std::vector<Tensor> rnn_forward(const Tensor& x_in, const Tensor& h0, const Tensor& weight_ih,
                                const Tensor& weight_hh_in, const OptionalTensor& bias, bool relu,
                                const OptionalTensor& mask_in) {
  const Tensor x = x_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = h0.size(1);
  Tensor hiddens = at::empty({steps + 1, batch, hidden}, x.options());  // h_0 .. h_T
  hiddens[0].copy_(h0);
  // every step's input projection in one GEMM, straight into the slots of h_1 .. h_T
  Tensor projected = hiddens.narrow(0, 1, steps).view({steps * batch, hidden});
  const Tensor flat = x.view({steps * batch, features});
  const int threads = team_size(batch * hidden * hidden, hidden);
  input_projection(projected, flat, weight_ih, nullptr);  // the bias joins in the activation
  const Tensor unit_bias = get(bias) ? bias->contiguous() : at::zeros({hidden}, x.options());
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_forward", [&] {
    scalar_t* states = hiddens.data_ptr<scalar_t>();
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    const scalar_t* bias_data = unit_bias.data_ptr<scalar_t>();
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      const scalar_t* previous = states + t * batch * hidden;
      scalar_t* next = states + (t + 1) * batch * hidden;
      scalar_t* __restrict__ out = next + row * hidden;
      const scalar_t* __restrict__ old = previous + row * hidden;
      const scalar_t* __restrict__ b = bias_data;
      if (!running(mask_data, t, batch, row)) {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) out[j] = old[j];
      } else if (relu) {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) {
          const scalar_t pre = out[j] + b[j];
          out[j] = pre > scalar_t(0) ? pre : 0;
        }
      } else {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) out[j] = tanh_(out[j] + b[j]);
      }
    };
    on_unit_ranges(threads, hidden, [&](UnitRange units) {  // each thread its own hidden units
      const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden,
                                                weight_hh.data_ptr<scalar_t>(), hidden, true, 1,
                                                hidden, units);
      const int64_t first = units.row_begin;
      for (int64_t t = 0; t < steps; ++t) {
        recurrent.run(states + (t * batch + first) * hidden, hidden, scalar_t(1),
                      states + ((t + 1) * batch + first) * hidden, hidden);  // += h W_hh^T
        for (int64_t row = first; row < units.row_end; ++row)
          step_row(t, row, units.begin, units.end);
        units.barrier();  // all of h_t before the next step's GEMM
      }
    }, batch);
  });
  return {hiddens};
}

std::vector<Tensor> rnn_backward(const OptionalTensor& grad_output_in,
                                 const OptionalTensor& grad_h_n, const Tensor& x,
                                 const Tensor& weight_ih, const Tensor& weight_hh_in,
                                 const Tensor& hiddens, const OptionalTensor& mask_in, bool relu,
                                 bool record, bool has_bias, std::vector<bool> needs) {
  const Tensor weight_hh = weight_hh_in.contiguous();
  const int64_t steps = hiddens.size(0) - 1, batch = hiddens.size(1), hidden = hiddens.size(2);
  Tensor grad_pre = scratch(kScratchGates, {steps, batch, hidden}, hiddens.options());
  Tensor grad_h = get(grad_h_n) ? grad_h_n->contiguous().clone()
                                : at::zeros({batch, hidden}, hiddens.options());
  Tensor hidden_grads = record ? at::empty({steps, batch, hidden}, hiddens.options()) : Tensor();
  const Tensor grad_output = get(grad_output_in) ? grad_output_in->contiguous() : Tensor();
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(hiddens.scalar_type(), "rnn_backward", [&] {
    scalar_t* grad_state = grad_h.data_ptr<scalar_t>();
    scalar_t* grad_pre_data = grad_pre.data_ptr<scalar_t>();
    const scalar_t* states = hiddens.data_ptr<scalar_t>();
    const scalar_t* outputs = grad_output.defined() ? grad_output.data_ptr<scalar_t>() : nullptr;
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    scalar_t* recorded = record ? hidden_grads.data_ptr<scalar_t>() : nullptr;
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      const int64_t offset = t * batch * hidden;
      const int64_t at_row = offset + row * hidden;
      scalar_t* __restrict__ grad = grad_state + row * hidden;
      scalar_t* __restrict__ pre = grad_pre_data + at_row;
      scalar_t* __restrict__ seen = recorded ? recorded + at_row : nullptr;
      if (!running(mask_data, t, batch, row)) {  // held past the end: passes through as is
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) pre[j] = 0;
        if (seen) for (int64_t j = begin; j < end; ++j) seen[j] = 0;
        return;
      }
      const scalar_t* __restrict__ h = states + (t + 1) * batch * hidden + row * hidden;
      if (outputs) {
        const scalar_t* __restrict__ out = outputs + at_row;
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) grad[j] += out[j];
      }
      if (seen) for (int64_t j = begin; j < end; ++j) seen[j] = grad[j];
      if (relu) {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) pre[j] = h[j] > scalar_t(0) ? grad[j] : 0;
      } else {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) pre[j] = grad[j] * (1 - h[j] * h[j]);
      }
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) grad[j] = 0;  // the GEMM accumulates into it
    };
    const int threads = team_size(batch * hidden * hidden, hidden);
    on_unit_ranges(threads, hidden, [&](UnitRange units) {  // each thread its own hidden units
      // (N, H) @ W_hh (H, H), the thread's columns of the error one step back
      const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden,
                                                weight_hh.data_ptr<scalar_t>(), hidden, false, 1,
                                                hidden, units);
      const int64_t first = units.row_begin;
      for (int64_t t = steps - 1; t >= 0; --t) {
        for (int64_t row = first; row < units.row_end; ++row)
          step_row(t, row, units.begin, units.end);
        units.barrier();  // all of dL/d(pre-activation) at t before the GEMM reads it
        recurrent.run(grad_pre_data + (t * batch + first) * hidden, hidden, scalar_t(1),
                      grad_state + first * hidden, hidden);  // read next by this thread only
      }
    }, batch);
  });
  Tensor grad_x, grad_weight_ih, grad_weight_hh, grad_bias;
  const Tensor flat = grad_pre.view({steps * batch, hidden});
  if (needs[0]) grad_x = matrix_product(flat, weight_ih).view({steps, batch, weight_ih.size(1)});
  if (needs[1]) grad_weight_ih = weight_gradient(grad_pre, x);
  if (needs[2]) grad_weight_hh = weight_gradient(grad_pre, hiddens.narrow(0, 0, steps));
  if (has_bias && needs[3]) grad_bias = flat.sum(0);
  return {grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias, hidden_grads};
}

}  // namespace rnnkit
