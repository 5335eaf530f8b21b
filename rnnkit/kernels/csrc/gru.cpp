// GRU (torch's variant: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))), forward and backward
// through time; the loop of bptt/gru.py. Shapes: see common.h. G = 3H: reset, update, new.
#include "common.h"

namespace rnnkit {

std::vector<Tensor> gru_forward(const Tensor& x_in, const Tensor& h0, const Tensor& weight_ih,
                                const Tensor& weight_hh_in, const OptionalTensor& bias_ih,
                                const OptionalTensor& bias_hh, const OptionalTensor& mask_in) {
  const Tensor x = x_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = h0.size(1), width = 3 * hidden;
  Tensor hiddens = at::empty({steps + 1, batch, hidden}, x.options());
  Tensor gates = at::empty({steps, batch, width}, x.options());
  Tensor hidden_new = at::empty({steps, batch, hidden}, x.options());  // W_hn h_{t-1} + b_hn
  Tensor from_hidden = at::empty({batch, width}, x.options());  // one step's h W_hh^T
  const Tensor recurrent_bias = get(bias_hh) ? bias_hh->contiguous() : at::zeros({width}, x.options());
  hiddens[0].copy_(h0);
  const Tensor flat = x.view({steps * batch, features});
  Tensor gates_flat = gates.view({steps * batch, width});
  const int threads = team_size(batch * width * hidden, hidden);
  input_projection(gates_flat, flat, weight_ih, nullptr);  // b_ih joins in the gate math
  const Tensor input_bias = get(bias_ih) ? bias_ih->contiguous() : at::zeros({width}, x.options());
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward", [&] {
    scalar_t* gate_data = gates.data_ptr<scalar_t>();
    scalar_t* hidden_data = hiddens.data_ptr<scalar_t>();
    scalar_t* new_data = hidden_new.data_ptr<scalar_t>();
    scalar_t* from_hidden_data = from_hidden.data_ptr<scalar_t>();
    const scalar_t* bias_data = recurrent_bias.data_ptr<scalar_t>();
    const scalar_t* input_bias_data = input_bias.data_ptr<scalar_t>();
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    // the gate math of units [begin, end) of one row at step t, from_hidden holding h W_hh^T
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      const scalar_t* h_previous = hidden_data + t * batch * hidden;
      scalar_t* h_next = hidden_data + (t + 1) * batch * hidden;
      scalar_t* __restrict__ reset = gate_data + (t * batch + row) * width;  // W_i x
      scalar_t* __restrict__ update = reset + hidden;
      scalar_t* __restrict__ candidate = reset + 2 * hidden;
      const scalar_t* __restrict__ from_h = from_hidden_data + row * width;
      const scalar_t* __restrict__ b = bias_data;
      const scalar_t* __restrict__ bi = input_bias_data;
      scalar_t* __restrict__ saved = new_data + (t * batch + row) * hidden;
      const scalar_t* __restrict__ h_old = h_previous + row * hidden;
      scalar_t* __restrict__ h_new = h_next + row * hidden;
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) {
        const scalar_t r = sigmoid((reset[j] + bi[j]) + (from_h[j] + b[j]));
        const scalar_t z =
            sigmoid((update[j] + bi[hidden + j]) + (from_h[hidden + j] + b[hidden + j]));
        const scalar_t hn = from_h[2 * hidden + j] + b[2 * hidden + j];
        const scalar_t n = tanh_((candidate[j] + bi[2 * hidden + j]) + r * hn);
        reset[j] = r;
        update[j] = z;
        candidate[j] = n;
        saved[j] = hn;
        h_new[j] = n + z * (h_old[j] - n);  // (1 - z) n + z h
      }
      if (!running(mask_data, t, batch, row)) {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) h_new[j] = h_old[j];
      }
    };
    on_unit_ranges(threads, hidden, [&](UnitRange units) {  // each thread its own hidden units
      const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden,
                                                weight_hh.data_ptr<scalar_t>(), hidden, true, 3,
                                                hidden, units);
      const int64_t first = units.row_begin;
      for (int64_t t = 0; t < steps; ++t) {
        recurrent.run(hidden_data + (t * batch + first) * hidden, hidden, scalar_t(0),
                      from_hidden_data + first * width, width);
        for (int64_t row = first; row < units.row_end; ++row)
          step_row(t, row, units.begin, units.end);
        units.barrier();  // all of h_t before the next step's GEMM
      }
    }, batch);
  });
  return {hiddens, gates, hidden_new};
}

std::vector<Tensor> gru_backward(const OptionalTensor& grad_output_in,
                                 const OptionalTensor& grad_h_n, const Tensor& x,
                                 const Tensor& weight_ih, const Tensor& weight_hh_in,
                                 const Tensor& hiddens, const Tensor& gates,
                                 const Tensor& hidden_new, const OptionalTensor& mask_in,
                                 bool record, bool has_bias, std::vector<bool> needs) {
  const Tensor weight_hh = weight_hh_in.contiguous();
  const int64_t steps = gates.size(0), batch = gates.size(1), width = gates.size(2);
  const int64_t hidden = width / 3;
  const auto options = gates.options();
  Tensor grad_from_input = scratch(kScratchGates, {steps, batch, width}, options);  // W_ih x
  // dL/d(W_hh h + b_hh) equals dL/d(W_ih x + b_ih) in the reset and update blocks; its new
  // block, dL/d(W_hn h + b_hn) = r * dL/dn, is kept for two steps only (the GEMM of step t
  // reads one slot while step t-1 writes the other) and made again by blocks for dW_hn: a
  // [T, N, H] of it was 25 MiB above torch.nn's training memory at T 200, batch 64, hidden 512
  Tensor grad_hidden_new = scratch(kScratchGates2, {2, batch, hidden}, options);
  Tensor grad_h = get(grad_h_n) ? grad_h_n->contiguous().clone()
                                : at::zeros({batch, hidden}, options);
  Tensor hidden_grads = record ? at::empty({steps, batch, hidden}, options) : Tensor();
  const Tensor grad_output = get(grad_output_in) ? grad_output_in->contiguous() : Tensor();
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_backward", [&] {
    scalar_t* input_data = grad_from_input.data_ptr<scalar_t>();
    scalar_t* hidden_new_grad_data = grad_hidden_new.data_ptr<scalar_t>();
    scalar_t* grad_h_data = grad_h.data_ptr<scalar_t>();
    scalar_t* seen = record ? hidden_grads.data_ptr<scalar_t>() : nullptr;
    const scalar_t* gate_data = gates.data_ptr<scalar_t>();
    const scalar_t* state_data = hiddens.data_ptr<scalar_t>();
    const scalar_t* new_data = hidden_new.data_ptr<scalar_t>();
    const scalar_t* outputs = grad_output.defined() ? grad_output.data_ptr<scalar_t>() : nullptr;
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    // dL/d(pre-activations) of units [begin, end) of one row at step t; grad_h keeps the direct
    // path, the GEMM then adds the one through W_hh
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      const int64_t at_gates = (t * batch + row) * width, at_row = (t * batch + row) * hidden;
      scalar_t* __restrict__ gi_reset = input_data + at_gates;
      scalar_t* __restrict__ gi_update = gi_reset + hidden;
      scalar_t* __restrict__ gi_new = gi_reset + 2 * hidden;
      scalar_t* __restrict__ gh_new = hidden_new_grad_data + ((t & 1) * batch + row) * hidden;
      scalar_t* __restrict__ grad = grad_h_data + row * hidden;
      scalar_t* __restrict__ record_h = seen ? seen + at_row : nullptr;
      if (!running(mask_data, t, batch, row)) {  // held: passes through unchanged
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) {
          gi_reset[j] = gi_update[j] = gi_new[j] = gh_new[j] = 0;
        }
        if (record_h) for (int64_t j = begin; j < end; ++j) record_h[j] = 0;
        return;
      }
      const scalar_t* __restrict__ reset = gate_data + at_gates;
      const scalar_t* __restrict__ update = reset + hidden;
      const scalar_t* __restrict__ candidate = reset + 2 * hidden;
      const scalar_t* __restrict__ h_old = state_data + (t * batch + row) * hidden;
      const scalar_t* __restrict__ hn = new_data + at_row;
      if (outputs) {
        const scalar_t* __restrict__ out = outputs + at_row;
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) grad[j] += out[j];
      }
      if (record_h) for (int64_t j = begin; j < end; ++j) record_h[j] = grad[j];
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) {
        const scalar_t r = reset[j], z = update[j], n = candidate[j], dh = grad[j];
        const scalar_t d_new = dh * (1 - z) * (1 - n * n);
        const scalar_t d_update = dh * (h_old[j] - n) * (z * (1 - z));
        const scalar_t d_reset = d_new * hn[j] * (r * (1 - r));
        gi_reset[j] = d_reset;
        gi_update[j] = d_update;
        gi_new[j] = d_new;
        gh_new[j] = d_new * r;
        grad[j] = dh * z;  // the direct path; the GEMM adds the one through W_hh
      }
    };
    const int threads = team_size(batch * width * hidden, hidden);
    on_unit_ranges(threads, hidden, [&](UnitRange units) {  // each thread its own hidden units
      // (N, 3H) @ W_hh (3H, H), the thread's columns of dL/dh_{t-1}, in two parts: the reset
      // and update blocks of dL/d(W_ih x) against W_hr, W_hz, and dL/d(W_hn h) against W_hn
      const scalar_t* weight_hh_data = weight_hh.data_ptr<scalar_t>();
      const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), 2 * hidden, weight_hh_data,
                                                hidden, false, 1, hidden, units);
      const UnitColumnsGemm<scalar_t> recurrent_new(units.row_count(), hidden,
                                                    weight_hh_data + 2 * hidden * hidden, hidden,
                                                    false, 1, hidden, units, kScratchGates3);
      const int64_t first = units.row_begin;
      for (int64_t t = steps - 1; t >= 0; --t) {
        for (int64_t row = first; row < units.row_end; ++row)
          step_row(t, row, units.begin, units.end);
        units.barrier();  // all of dL/d(W_hh h) at t before the GEMM reads it
        recurrent.run(input_data + (t * batch + first) * width, width, scalar_t(1),
                      grad_h_data + first * hidden, hidden);  // read next by this thread only
        recurrent_new.run(hidden_new_grad_data + ((t & 1) * batch + first) * hidden, hidden,
                          scalar_t(1), grad_h_data + first * hidden, hidden);
      }
    }, batch);
  });
  Tensor grad_x, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh;
  const Tensor flat_input = grad_from_input.view({steps * batch, width});
  if (needs[0]) grad_x = matrix_product(flat_input, weight_ih).view({steps, batch, weight_ih.size(1)});
  // the weight gradients straight from the [T*N, G] gradients, transposed inside the GEMM: no
  // transposed copy of them (gradient_rows), which would be another [T, N, 3H] at the peak
  if (needs[1]) grad_weight_ih = at::mm(flat_input.t(), x.reshape({steps * batch, -1}));
  Tensor own, own_bias;  // dW_hn and db_hn from r * dL/dn, made again a block of steps at a time
  if (needs[2]) own = at::zeros({hidden, hidden}, options);
  if (has_bias && needs[4]) own_bias = at::zeros({hidden}, options);
  if (own.defined() || own_bias.defined()) {
    const int64_t step_bytes = std::max<int64_t>(1, batch * hidden * gates.element_size());
    const int64_t block = std::max<int64_t>(1, (int64_t(4) << 20) / step_bytes);  // ~4 MiB
    for (int64_t t = 0; t < steps; t += block) {
      const int64_t count = std::min(block, steps - t);
      const Tensor grad_new = (gates.narrow(0, t, count).narrow(2, 0, hidden) *
                               grad_from_input.narrow(0, t, count).narrow(2, 2 * hidden, hidden))
                                  .view({count * batch, hidden});
      if (own.defined())
        own.addmm_(grad_new.t(), hiddens.narrow(0, t, count).reshape({count * batch, hidden}));
      if (own_bias.defined()) own_bias.add_(grad_new.sum(0));
    }
  }
  if (needs[2]) {
    const Tensor inputs = hiddens.narrow(0, 0, steps).reshape({steps * batch, hidden});
    grad_weight_hh = at::empty({width, hidden}, options);
    Tensor shared = grad_weight_hh.narrow(0, 0, 2 * hidden);
    at::mm_out(shared, flat_input.narrow(1, 0, 2 * hidden).t(), inputs);
    grad_weight_hh.narrow(0, 2 * hidden, hidden).copy_(own);
  }
  if (has_bias && needs[3]) grad_bias_ih = flat_input.sum(0);
  if (has_bias && needs[4])
    grad_bias_hh = at::cat({flat_input.narrow(1, 0, 2 * hidden).sum(0), own_bias});
  return {grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh,
          hidden_grads};
}

}  // namespace rnnkit
