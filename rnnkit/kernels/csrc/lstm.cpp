// LSTM, with optional projection, forward and backward through time; the loop of bptt/lstm.py.
// Shapes: see common.h. G = 4H in the order input, forget, cell, output.
#include "common.h"

namespace rnnkit {

std::vector<Tensor> lstm_forward(const Tensor& x_in, const Tensor& h0, const Tensor& c0,
                                 const Tensor& weight_ih, const Tensor& weight_hh_in,
                                 const OptionalTensor& bias, const OptionalTensor& weight_hr_in,
                                 const OptionalTensor& mask_in) {
  const Tensor x = x_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = c0.size(1), out_size = h0.size(1), width = 4 * hidden;
  const bool projected = get(weight_hr_in) != nullptr;
  const Tensor weight_hr = projected ? weight_hr_in->contiguous() : Tensor();
  Tensor hiddens = at::empty({steps + 1, batch, out_size}, x.options());  // h_0 .. h_T
  Tensor cells = at::empty({steps + 1, batch, hidden}, x.options());      // c_0 .. c_T
  Tensor gates = at::empty({steps, batch, width}, x.options());
  hiddens[0].copy_(h0);
  cells[0].copy_(c0);
  // every step's input projection in one GEMM, into the gate buffer the steps then finish
  const Tensor flat = x.view({steps * batch, features});
  Tensor gates_flat = gates.view({steps * batch, width});
  const int threads = team_size(batch * width * out_size, hidden);
  input_projection(gates_flat, flat, weight_ih, nullptr);  // the bias joins in the gate math
  const Tensor gate_bias = get(bias) ? bias->contiguous() : at::zeros({width}, x.options());
  Tensor unprojected = projected ? at::empty({batch, hidden}, x.options()) : Tensor();
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    scalar_t* gate_data = gates.data_ptr<scalar_t>();
    scalar_t* hidden_data = hiddens.data_ptr<scalar_t>();
    scalar_t* cell_data = cells.data_ptr<scalar_t>();
    scalar_t* raw = projected ? unprojected.data_ptr<scalar_t>() : nullptr;
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    const scalar_t* bias_data = gate_bias.data_ptr<scalar_t>();
    // the gate math of units [begin, end) of one row at step t: gates, c_t, h_t (or, projected,
    // the unprojected h_t into `raw`)
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      scalar_t* __restrict__ input = gate_data + (t * batch + row) * width;
      scalar_t* __restrict__ forget = input + hidden;
      scalar_t* __restrict__ cell = input + 2 * hidden;
      scalar_t* __restrict__ output = input + 3 * hidden;
      const scalar_t* __restrict__ c_old = cell_data + (t * batch + row) * hidden;
      scalar_t* __restrict__ c_new = cell_data + ((t + 1) * batch + row) * hidden;
      scalar_t* __restrict__ h_new =
          projected ? raw + row * hidden : hidden_data + ((t + 1) * batch + row) * out_size;
      const scalar_t* __restrict__ b = bias_data;
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) {
        const scalar_t i = sigmoid(input[j] + b[j]), f = sigmoid(forget[j] + b[hidden + j]);
        const scalar_t g = tanh_(cell[j] + b[2 * hidden + j]);
        const scalar_t o = sigmoid(output[j] + b[3 * hidden + j]);
        input[j] = i;
        forget[j] = f;
        cell[j] = g;
        output[j] = o;
        const scalar_t c = f * c_old[j] + i * g;  // keep some of the old memory, add some new
        c_new[j] = c;
        h_new[j] = o * tanh_(c);
      }
      if (!running(mask_data, t, batch, row)) {  // finished: hold the state
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) c_new[j] = c_old[j];
        if (!projected) {
          const scalar_t* __restrict__ h_old = hidden_data + (t * batch + row) * out_size;
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) h_new[j] = h_old[j];
        }
      }
    };
    const scalar_t* weight_hh_data = weight_hh.data_ptr<scalar_t>();
    if (!projected) {  // a team of threads, each with its own hidden units: see on_unit_ranges
      on_unit_ranges(threads, hidden, [&](UnitRange units) {
        const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), out_size, weight_hh_data,
                                                  out_size, true, 4, hidden, units);
        const int64_t first = units.row_begin;
        for (int64_t t = 0; t < steps; ++t) {
          recurrent.run(hidden_data + (t * batch + first) * out_size, out_size, scalar_t(1),
                        gate_data + (t * batch + first) * width, width);  // += h W_hh^T
          for (int64_t row = first; row < units.row_end; ++row)
            step_row(t, row, units.begin, units.end);
          units.barrier();  // all of h_t before the next step's GEMM
        }
      }, batch);
      return;
    }
    const RecurrentGemm<scalar_t> recurrent(batch, width, out_size, weight_hh_data, out_size,
                                            true);
    const RecurrentGemm<scalar_t> projection(batch, out_size, hidden,
                                             weight_hr.data_ptr<scalar_t>(), hidden, true);
    for (int64_t t = 0; t < steps; ++t) {
      const scalar_t* h_previous = hidden_data + t * batch * out_size;
      scalar_t* h_next = hidden_data + (t + 1) * batch * out_size;
      recurrent.run(h_previous, out_size, scalar_t(1), gate_data + t * batch * width, width);
      for_each_segment(batch, hidden, [&](int64_t row, int64_t begin, int64_t end) {
        step_row(t, row, begin, end);
      });
      projection.run(raw, hidden, scalar_t(0), h_next, out_size);  // (N, H) -> (N, P)
      for (int64_t row = 0; row < batch; ++row) {
        if (running(mask_data, t, batch, row)) continue;
        std::memcpy(h_next + row * out_size, h_previous + row * out_size,
                    sizeof(scalar_t) * out_size);
      }
    }
  });
  return {hiddens, cells, gates};
}

std::vector<Tensor> lstm_backward(const OptionalTensor& grad_output_in,
                                  const OptionalTensor& grad_h_n, const OptionalTensor& grad_c_n,
                                  const Tensor& x, const Tensor& weight_ih,
                                  const Tensor& weight_hh_in, const OptionalTensor& weight_hr_in,
                                  const Tensor& hiddens, const Tensor& cells, const Tensor& gates,
                                  const OptionalTensor& mask_in, bool record, bool has_bias,
                                  std::vector<bool> needs) {
  const Tensor weight_hh = weight_hh_in.contiguous();
  const int64_t steps = gates.size(0), batch = gates.size(1), width = gates.size(2);
  const int64_t hidden = width / 4, out_size = hiddens.size(2);
  const bool projected = get(weight_hr_in) != nullptr;
  const Tensor weight_hr = projected ? weight_hr_in->contiguous() : Tensor();
  const auto options = gates.options();
  Tensor grad_pre = scratch(kScratchGates, {steps, batch, width}, options);  // dL/d(gates)
  Tensor grad_h = get(grad_h_n) ? grad_h_n->contiguous().clone()
                                : at::zeros({batch, out_size}, options);
  Tensor grad_c = get(grad_c_n) ? grad_c_n->contiguous().clone()
                                : at::zeros({batch, hidden}, options);
  Tensor grad_unprojected = projected ? at::empty({batch, hidden}, options) : Tensor();
  Tensor grad_hidden_out = projected ? at::empty({steps, batch, out_size}, options) : Tensor();
  Tensor hidden_grads = record ? at::empty({steps, batch, out_size}, options) : Tensor();
  Tensor cell_grads = record ? at::empty({steps, batch, hidden}, options) : Tensor();
  const Tensor grad_output = get(grad_output_in) ? grad_output_in->contiguous() : Tensor();
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    scalar_t* grad_pre_data = grad_pre.data_ptr<scalar_t>();
    scalar_t* grad_h_data = grad_h.data_ptr<scalar_t>();
    scalar_t* grad_c_data = grad_c.data_ptr<scalar_t>();
    scalar_t* grad_raw = projected ? grad_unprojected.data_ptr<scalar_t>() : nullptr;
    scalar_t* grad_out_data = projected ? grad_hidden_out.data_ptr<scalar_t>() : nullptr;
    scalar_t* seen_h = record ? hidden_grads.data_ptr<scalar_t>() : nullptr;
    scalar_t* seen_c = record ? cell_grads.data_ptr<scalar_t>() : nullptr;
    const scalar_t* gate_data = gates.data_ptr<scalar_t>();
    const scalar_t* cell_data = cells.data_ptr<scalar_t>();
    const scalar_t* outputs = grad_output.defined() ? grad_output.data_ptr<scalar_t>() : nullptr;
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    // dL/d(gates) of units [begin, end) of one row at step t; dL/dc_{t-1} into grad_c, and
    // dL/dh_t zeroed for the GEMM that then adds dL/dh_{t-1} (held rows pass theirs on as it is)
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      const int64_t at_row = (t * batch + row) * hidden;
      const scalar_t* __restrict__ input = gate_data + (t * batch + row) * width;
      const scalar_t* __restrict__ forget = input + hidden;
      const scalar_t* __restrict__ cell = input + 2 * hidden;
      const scalar_t* __restrict__ output = input + 3 * hidden;
      scalar_t* __restrict__ grad_input = grad_pre_data + (t * batch + row) * width;
      scalar_t* __restrict__ grad_forget = grad_input + hidden;
      scalar_t* __restrict__ grad_cell = grad_input + 2 * hidden;
      scalar_t* __restrict__ grad_output_gate = grad_input + 3 * hidden;
      const scalar_t* __restrict__ c_old = cell_data + at_row;
      const scalar_t* __restrict__ c_new = cell_data + at_row + batch * hidden;
      scalar_t* __restrict__ grad_c_row = grad_c_data + row * hidden;
      scalar_t* __restrict__ record_c = seen_c ? seen_c + at_row : nullptr;
      if (!running(mask_data, t, batch, row)) {  // held: the gradient passes as it is
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) {
          grad_input[j] = grad_forget[j] = grad_cell[j] = grad_output_gate[j] = 0;
        }
        if (record_c) for (int64_t j = begin; j < end; ++j) record_c[j] = 0;
        if (!projected && seen_h) {
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) seen_h[at_row + j] = 0;
        }
        return;
      }
      scalar_t* __restrict__ grad_h_row;
      if (projected) {
        grad_h_row = grad_raw + row * hidden;
      } else {
        grad_h_row = grad_h_data + row * hidden;
        if (outputs) {
          const scalar_t* __restrict__ out = outputs + at_row;
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) grad_h_row[j] += out[j];
        }
        if (seen_h) for (int64_t j = begin; j < end; ++j) seen_h[at_row + j] = grad_h_row[j];
      }
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) {
        const scalar_t i = input[j], f = forget[j], g = cell[j], o = output[j];
        const scalar_t tanh_c = tanh_(c_new[j]);
        const scalar_t dh = grad_h_row[j];
        const scalar_t dc = grad_c_row[j] + dh * o * (1 - tanh_c * tanh_c);
        grad_input[j] = dc * g * (i * (1 - i));
        grad_forget[j] = dc * c_old[j] * (f * (1 - f));
        grad_cell[j] = dc * i * (1 - g * g);
        grad_output_gate[j] = dh * tanh_c * (o * (1 - o));
        if (record_c) record_c[j] = dc;  // loop-invariant: the compiler unswitches it
        grad_c_row[j] = dc * f;
        if (!projected) grad_h_row[j] = 0;  // the GEMM below accumulates into it
      }
    };
    const scalar_t* weight_hh_data = weight_hh.data_ptr<scalar_t>();
    if (!projected) {  // a team of threads, each with its own hidden units: see on_unit_ranges
      const int threads = team_size(batch * width * out_size, hidden);
      on_unit_ranges(threads, hidden, [&](UnitRange units) {
        // (N, 4H) @ W_hh (4H, H), the thread's columns of dL/dh_{t-1}
        const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), width, weight_hh_data,
                                                  out_size, false, 1, hidden, units);
        const int64_t first = units.row_begin;
        for (int64_t t = steps - 1; t >= 0; --t) {
          for (int64_t row = first; row < units.row_end; ++row)
            step_row(t, row, units.begin, units.end);
          units.barrier();  // all of dL/d(gates) at t before the GEMM reads it
          recurrent.run(grad_pre_data + (t * batch + first) * width, width, scalar_t(1),
                        grad_h_data + first * out_size, out_size);  // read next by this thread
        }
      }, batch);
      return;
    }
    // (N, 4H) @ W_hh (4H, P) and (N, P) @ W_hr (P, H)
    const RecurrentGemm<scalar_t> recurrent(batch, out_size, width, weight_hh_data, out_size,
                                            false);
    const RecurrentGemm<scalar_t> projection(batch, hidden, out_size,
                                             weight_hr.data_ptr<scalar_t>(), hidden, false);
    for (int64_t t = steps - 1; t >= 0; --t) {
      // dL/dh_t over (N, P) first: the projection's GEMM needs all of it
      for (int64_t row = 0; row < batch; ++row) {
        const int64_t at_row = (t * batch + row) * out_size;
        scalar_t* __restrict__ grad = grad_h_data + row * out_size;
        scalar_t* __restrict__ kept = grad_out_data + at_row;
        const bool runs = running(mask_data, t, batch, row);
        if (runs && outputs)
          for (int64_t j = 0; j < out_size; ++j) grad[j] += outputs[at_row + j];
        if (seen_h) for (int64_t j = 0; j < out_size; ++j) seen_h[at_row + j] = runs ? grad[j] : 0;
        for (int64_t j = 0; j < out_size; ++j) kept[j] = runs ? grad[j] : 0;
      }
      projection.run(grad_h_data, out_size, scalar_t(0), grad_raw, hidden);
      for (int64_t row = 0; row < batch; ++row) {
        if (!running(mask_data, t, batch, row)) continue;
        std::memset(grad_h_data + row * out_size, 0, sizeof(scalar_t) * out_size);
      }
      for_each_segment(batch, hidden, [&](int64_t row, int64_t begin, int64_t end) {
        step_row(t, row, begin, end);
      });
      recurrent.run(grad_pre_data + t * batch * width, width, scalar_t(1), grad_h_data, out_size);
    }
  });
  Tensor grad_x, grad_weight_ih, grad_weight_hh, grad_bias, grad_weight_hr;
  const Tensor flat = grad_pre.view({steps * batch, width});
  if (needs[0]) grad_x = matrix_product(flat, weight_ih).view({steps, batch, weight_ih.size(1)});
  if (needs[1]) grad_weight_ih = weight_gradient(grad_pre, x);
  if (needs[2]) grad_weight_hh = weight_gradient(grad_pre, hiddens.narrow(0, 0, steps));
  if (has_bias && needs[3]) grad_bias = flat.sum(0);
  if (projected && needs[4]) {
    const Tensor output_gate = gates.narrow(2, 3 * hidden, hidden);
    grad_weight_hr = weight_gradient(grad_hidden_out, output_gate * cells.narrow(0, 1, steps).tanh());
  }
  return {grad_x, grad_h, grad_c, grad_weight_ih, grad_weight_hh, grad_bias, grad_weight_hr,
          hidden_grads, cell_grads};
}

}  // namespace rnnkit
