// The backward through time of the LSTM variants (lstm_variants.cpp): the reverse loop of
// bptt/lstm_variants.py, templated on <kLayerNorm, kPeephole, kCoupled, kZoneout>.
//
// Per step: one fused pass per batch row (zoneout split, dL/dh into the output gate and the
// shown cell, LN_cell backward, the cell update, LN_hh backward), then one GEMM through W_hh
// into a preallocated [N, H] buffer. The next step reads dL/dh_t as that GEMM's result times
// the recurrent-dropout mask plus what did not pass through W_hh (zoneout's share, or the whole
// gradient of a finished sequence). After the loop: time-batched weight gradients, the LN_ih
// backward over all steps at once, and column sums for the gains, biases and peepholes.
//
// Buffers (shapes as in lstm_variants.cpp):
//   grad_pre         [T, N, 4H]  dL/d(gate pre-activations); with layer norm, afterwards
//                                overwritten by dL/d(W_ih x), the LN_ih backward of it
//   grad_from_hidden [T, N, 4H]  dL/d(W_hh h'), the LN_hh backward of grad_pre (layer norm)
//   grad_shown       [T, N, H]   dL/d(LN_cell(c_t)) (layer norm)
#include "variants.h"

namespace rnnkit {

namespace {

template <typename scalar_t>
struct LSTMVariantGrads {
  int64_t steps = 0, batch = 0, hidden = 0;
  const scalar_t* gates = nullptr;
  const scalar_t* cells = nullptr;
  const scalar_t* new_cells = nullptr;
  const scalar_t* normalized_hh = nullptr;
  const scalar_t* rstd_hh = nullptr;
  const scalar_t* normalized_cell = nullptr;
  const scalar_t* rstd_cell = nullptr;
  const scalar_t* ln_hh_weight = nullptr;
  const scalar_t* ln_cell_weight = nullptr;
  const scalar_t* ln_cell_bias = nullptr;
  const scalar_t* peephole = nullptr;
  const scalar_t* recurrent_mask = nullptr;
  ZoneRows<scalar_t> zone_h, zone_c;
  bool cell_zoneout = false;  // c_t is the zoned-out cell: dL/dc_t is what reaches it from t+1
  const scalar_t* mask = nullptr;
  const scalar_t* grad_output = nullptr;
  const scalar_t* weight_hh = nullptr;
  scalar_t* grad_pre = nullptr;
  scalar_t* grad_from_hidden = nullptr;
  scalar_t* grad_shown = nullptr;
  scalar_t* carry_h = nullptr;   // [N, H] dL/dh_t not passing through W_hh
  scalar_t* through_w = nullptr; // [N, H] the GEMM's dL/dh'_t
  scalar_t* grad_c = nullptr;    // [N, H]
  scalar_t* hidden_grads = nullptr;
  scalar_t* cell_grads = nullptr;
};

template <typename scalar_t, bool kLayerNorm, bool kPeephole, bool kCoupled, bool kZoneout>
void backward_loop(const LSTMVariantGrads<scalar_t>& d) {
  const int64_t batch = d.batch, hidden = d.hidden, width = 4 * hidden;
  // dL/d(gates) of units [begin, end) of one row at step t (with layer norm: the whole row)
  auto gate_grads = [&](int64_t t, int64_t row, int64_t begin, int64_t end) RNNKIT_FLATTEN {
    const int64_t step_row = t * batch + row, at_row = step_row * hidden;
    scalar_t* __restrict__ carry = d.carry_h + row * hidden;
    const bool runs = running(d.mask, t, batch, row);
    // dL/dh_t, assembled in `carry`, which the pass below then overwrites with zoneout's
    // share for h_{t-1}
    assemble_hidden_grad(carry, d.through_w + row * hidden,
                         d.recurrent_mask ? d.recurrent_mask + row * hidden : nullptr,
                         d.grad_output ? d.grad_output + at_row : nullptr,
                         d.hidden_grads ? d.hidden_grads + at_row : nullptr, runs, begin, end);
    scalar_t* __restrict__ grad_input = d.grad_pre + step_row * width;
    if (!runs) {  // held: the gradient passes as it is (it stays in carry and grad_c)
      for (int64_t gate = 0; gate < 4; ++gate)
        std::memset(grad_input + gate * hidden + begin, 0, sizeof(scalar_t) * (end - begin));
      if constexpr (kLayerNorm) {
        std::memset(d.grad_from_hidden + step_row * width, 0, sizeof(scalar_t) * width);
        std::memset(d.grad_shown + at_row, 0, sizeof(scalar_t) * hidden);
      }
      if (d.cell_grads) {
        std::memset(d.cell_grads + at_row + begin, 0, sizeof(scalar_t) * (end - begin));
      }
      return;
    }
    scalar_t* __restrict__ grad_forget = grad_input + hidden;
    scalar_t* __restrict__ grad_cell = grad_input + 2 * hidden;
    scalar_t* __restrict__ grad_output_gate = grad_input + 3 * hidden;
    const scalar_t* __restrict__ input = d.gates + step_row * width;
    const scalar_t* __restrict__ forget = input + hidden;
    const scalar_t* __restrict__ cell = input + 2 * hidden;
    const scalar_t* __restrict__ output = input + 3 * hidden;
    const scalar_t* __restrict__ c_old = d.cells + at_row;
    const scalar_t* __restrict__ c_new = d.new_cells + at_row;
    const scalar_t* __restrict__ zone_h = d.zone_h.at(step_row);
    const scalar_t* __restrict__ zone_c = d.zone_c.at(step_row);
    const scalar_t* __restrict__ peep = d.peephole;
    scalar_t* __restrict__ grad_c = d.grad_c + row * hidden;
    scalar_t* __restrict__ record_c = d.cell_grads ? d.cell_grads + at_row : nullptr;
    // dL/dh_t -> output gate and dL/d(shown cell); zoneout keeps a share for h_{t-1}
    const scalar_t* __restrict__ normalized_c = kLayerNorm ? d.normalized_cell + at_row
                                                           : nullptr;
    scalar_t* __restrict__ grad_shown = kLayerNorm ? d.grad_shown + at_row : nullptr;
    const scalar_t* __restrict__ cell_gain = d.ln_cell_weight;
    const scalar_t* __restrict__ cell_shift = d.ln_cell_bias;
    scalar_t mean_g = 0, mean_gn = 0, cell_rstd = 0;
    if constexpr (kLayerNorm) {
      RNNKIT_SIMD
      for (int64_t j = 0; j < hidden; ++j) {
        scalar_t dh = carry[j];
        if constexpr (kZoneout) {
          carry[j] = dh * zone_h[j];
          dh = dh * (1 - zone_h[j]);
        } else {
          carry[j] = 0;
        }
        const scalar_t o = output[j];
        const scalar_t tanh_shown = tanh_(normalized_c[j] * cell_gain[j] + cell_shift[j]);
        grad_output_gate[j] = dh * tanh_shown * (o * (1 - o));
        grad_shown[j] = dh * o * (1 - tanh_shown * tanh_shown);
      }
      std::tie(mean_g, mean_gn) = gradient_means(grad_shown, cell_gain, normalized_c, hidden);
      cell_rstd = d.rstd_cell[step_row];
    }
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) {
      scalar_t grad_into_cell;  // dL/dc_t through h_t
      scalar_t grad_pre_output;
      if constexpr (kLayerNorm) {
        grad_pre_output = grad_output_gate[j];
        grad_into_cell = cell_rstd * (grad_shown[j] * cell_gain[j] - mean_g -
                                      normalized_c[j] * mean_gn);
      } else {
        scalar_t dh = carry[j];
        if constexpr (kZoneout) {
          carry[j] = dh * zone_h[j];
          dh = dh * (1 - zone_h[j]);
        } else {
          carry[j] = 0;
        }
        const scalar_t o = output[j];
        const scalar_t tanh_c = tanh_(c_new[j]);
        grad_pre_output = dh * tanh_c * (o * (1 - o));
        grad_output_gate[j] = grad_pre_output;
        grad_into_cell = dh * o * (1 - tanh_c * tanh_c);
      }
      scalar_t dc = grad_c[j], grad_c_previous = 0;
      if (record_c && d.cell_zoneout) record_c[j] = dc;  // dL/dc_t of the zoned-out c_t
      if constexpr (kZoneout) {
        grad_c_previous = dc * zone_c[j];
        dc = dc * (1 - zone_c[j]);
      }
      dc += grad_into_cell;
      if constexpr (kPeephole) dc += grad_pre_output * peep[2 * hidden + j];
      if (record_c && !d.cell_zoneout) record_c[j] = dc;  // loop-invariant: unswitched
      const scalar_t i = input[j], f = forget[j], g = cell[j], c_prev = c_old[j];
      scalar_t grad_pre_input, grad_forget_gate = dc * c_prev;
      if constexpr (kCoupled) {  // i = 1 - f
        grad_forget_gate -= dc * g;
        grad_pre_input = 0;
      } else {
        grad_pre_input = dc * g * (i * (1 - i));
      }
      const scalar_t grad_pre_forget = grad_forget_gate * (f * (1 - f));
      grad_input[j] = grad_pre_input;
      grad_forget[j] = grad_pre_forget;
      grad_cell[j] = dc * i * (1 - g * g);
      scalar_t carried = dc * f + grad_c_previous;
      if constexpr (kPeephole) {
        carried += grad_pre_input * peep[j] + grad_pre_forget * peep[hidden + j];
      }
      grad_c[j] = carried;
    }
    if constexpr (kLayerNorm) {  // LN_hh backward: dL/d(W_hh h')
      layer_norm_row_backward(grad_input, d.ln_hh_weight, d.normalized_hh + step_row * width,
                              d.rstd_hh[step_row], width,
                              d.grad_from_hidden + step_row * width);
    }
  };
  // a team of threads (see on_unit_ranges): with enough sequences each runs its own through
  // every step, no barriers; else each owns hidden units, its units' gate gradients and its
  // columns of dL/dh'_{t-1}, and as layer norm needs whole rows, there the row pass is split by
  // rows and a step takes a second barrier
  const int threads = team_size(batch * width * hidden, hidden);
  on_unit_ranges(threads, hidden, [&](UnitRange units) {
    // (N, 4H) @ W_hh (4H, H), this thread's columns
    const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), width, d.weight_hh, hidden,
                                              false, 1, hidden, units);
    const int64_t first = units.row_begin;
    const auto [first_row, last_row] = units.rows(batch);
    const scalar_t* gemm_input = kLayerNorm ? d.grad_from_hidden : d.grad_pre;
    for (int64_t t = d.steps - 1; t >= 0; --t) {
      if constexpr (kLayerNorm) {
        for (int64_t row = first_row; row < last_row; ++row) gate_grads(t, row, 0, hidden);
      } else {
        for (int64_t row = first; row < units.row_end; ++row)
          gate_grads(t, row, units.begin, units.end);
      }
      units.barrier();  // all of dL/d(W_hh h') at t before the GEMM reads it
      recurrent.run(gemm_input + (t * batch + first) * width, width, scalar_t(0),
                    d.through_w + first * hidden, hidden);
      if constexpr (kLayerNorm) units.barrier();  // the next row pass reads whole rows of it
    }
  }, batch);
  // dL/dh_0 = what passed through W_hh (times the dropout mask) + what did not
  assemble_hidden_grad<scalar_t>(d.carry_h, d.through_w, d.recurrent_mask, nullptr,
                                 nullptr, true, 0, batch * hidden);
}

}  // namespace

std::vector<Tensor> lstm_variant_backward(
    const OptionalTensor& grad_output_in, const OptionalTensor& grad_h_n,
    const OptionalTensor& grad_c_n, const Tensor& x, const Tensor& weight_ih,
    const Tensor& weight_hh_in, const Tensor& hiddens, const Tensor& cells,
    const Tensor& new_cells, const Tensor& gates, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& ln_cell_weight, const OptionalTensor& ln_cell_bias,
    const OptionalTensor& normalized_ih, const OptionalTensor& rstd_ih,
    const OptionalTensor& normalized_hh, const OptionalTensor& rstd_hh,
    const OptionalTensor& normalized_cell, const OptionalTensor& rstd_cell,
    const OptionalTensor& peephole_in, const OptionalTensor& recurrent_mask_in,
    const OptionalTensor& zone_h, const OptionalTensor& zone_c, bool coupled,
    const OptionalTensor& mask_in, bool record, bool has_bias, std::vector<bool> needs) {
  const Tensor weight_hh = weight_hh_in.contiguous();
  const int64_t steps = gates.size(0), batch = gates.size(1), width = gates.size(2);
  const int64_t hidden = width / 4, rows = steps * batch;
  const auto options = gates.options();
  const bool layer_norm = get(ln_ih_weight) != nullptr;
  const bool zoneout = get(zone_h) != nullptr || get(zone_c) != nullptr;
  Tensor grad_pre = scratch(0, {steps, batch, width}, options);
  Tensor grad_from_hidden = layer_norm ? scratch(1, {steps, batch, width}, options) : Tensor();
  Tensor grad_shown = layer_norm ? scratch(2, {steps, batch, hidden}, options) : Tensor();
  Tensor carry_h = get(grad_h_n) ? grad_h_n->contiguous().clone()
                                 : at::zeros({batch, hidden}, options);
  Tensor through_w = at::zeros({batch, hidden}, options);
  Tensor grad_c = get(grad_c_n) ? grad_c_n->contiguous().clone()
                                : at::zeros({batch, hidden}, options);
  Tensor hidden_grads = record ? at::empty({steps, batch, hidden}, options) : Tensor();
  Tensor cell_grads = record ? at::empty({steps, batch, hidden}, options) : Tensor();
  const Tensor grad_output = contiguous_or_empty(grad_output_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  const Tensor peephole = contiguous_or_empty(peephole_in);
  const Tensor recurrent_mask = contiguous_or_empty(recurrent_mask_in);
  const Tensor ln_ih_w = contiguous_or_empty(ln_ih_weight), ln_hh_w = contiguous_or_empty(ln_hh_weight);
  const Tensor ln_c_w = contiguous_or_empty(ln_cell_weight);
  const Tensor ln_c_b = contiguous_or_empty(ln_cell_bias);
  const Tensor n_ih = contiguous_or_empty(normalized_ih), n_hh = contiguous_or_empty(normalized_hh);
  const Tensor n_cell = contiguous_or_empty(normalized_cell);
  const Tensor r_ih = contiguous_or_empty(rstd_ih), r_hh = contiguous_or_empty(rstd_hh);
  const Tensor r_cell = contiguous_or_empty(rstd_cell);
  Tensor grad_ln_ih_w, grad_ln_ih_b, grad_ln_hh_w, grad_ln_hh_b, grad_ln_c_w, grad_ln_c_b;
  Tensor grad_bias, grad_peephole;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_variant_backward", [&] {
    LSTMVariantGrads<scalar_t> d;
    d.steps = steps;
    d.batch = batch;
    d.hidden = hidden;
    d.gates = gates.data_ptr<scalar_t>();
    d.cells = cells.data_ptr<scalar_t>();
    d.new_cells = new_cells.data_ptr<scalar_t>();
    d.normalized_hh = pointer<scalar_t>(n_hh);
    d.rstd_hh = pointer<scalar_t>(r_hh);
    d.normalized_cell = pointer<scalar_t>(n_cell);
    d.rstd_cell = pointer<scalar_t>(r_cell);
    d.ln_hh_weight = pointer<scalar_t>(ln_hh_w);
    d.ln_cell_weight = pointer<scalar_t>(ln_c_w);
    d.ln_cell_bias = pointer<scalar_t>(ln_c_b);
    d.peephole = pointer<scalar_t>(peephole);
    d.recurrent_mask = pointer<scalar_t>(recurrent_mask);
    d.zone_h = zone_rows<scalar_t>(zone_h, hidden, options);
    d.zone_c = zone_rows<scalar_t>(zone_c, hidden, options);
    d.cell_zoneout = get(zone_c) != nullptr;
    d.mask = pointer<scalar_t>(mask);
    d.grad_output = pointer<scalar_t>(grad_output);
    d.weight_hh = weight_hh.data_ptr<scalar_t>();
    d.grad_pre = grad_pre.data_ptr<scalar_t>();
    d.grad_from_hidden = mutable_pointer<scalar_t>(grad_from_hidden);
    d.grad_shown = mutable_pointer<scalar_t>(grad_shown);
    d.carry_h = carry_h.data_ptr<scalar_t>();
    d.through_w = through_w.data_ptr<scalar_t>();
    d.grad_c = grad_c.data_ptr<scalar_t>();
    d.hidden_grads = mutable_pointer<scalar_t>(hidden_grads);
    d.cell_grads = mutable_pointer<scalar_t>(cell_grads);
    with_flag(layer_norm, [&](auto norm) {
      with_flag(peephole.defined(), [&](auto peep) {
        with_flag(coupled, [&](auto couple) {
          with_flag(zoneout, [&](auto zone) {
            backward_loop<scalar_t, decltype(norm)::value, decltype(peep)::value,
                          decltype(couple)::value, decltype(zone)::value>(d);
          });
        });
      });
    });
    // the gate biases, LN_ih's and LN_hh's biases all receive dL/d(pre-activations)
    if (layer_norm) {  // ... and grad_pre becomes dL/d(W_ih x), the LN_ih backward of it
      grad_bias = at::empty({width}, options);
      grad_ln_ih_w = at::empty({width}, options);
      grad_ln_hh_w = at::empty({width}, options);
      grad_ln_c_w = column_sum_tensor<scalar_t>(rows, hidden, grad_shown, &n_cell);
      grad_ln_c_b = column_sum_tensor<scalar_t>(rows, hidden, grad_shown, nullptr);
    } else if (has_bias) {
      grad_bias = column_sum_tensor<scalar_t>(rows, width, grad_pre, nullptr);
    }
    if (peephole.defined()) {  // sum over steps and rows of dL/d(pre) * the cell it saw
      grad_peephole = at::empty({3 * hidden}, options);
      scalar_t* out = grad_peephole.data_ptr<scalar_t>();
      const scalar_t* pre = grad_pre.data_ptr<scalar_t>();
      column_sums<scalar_t>(rows, hidden, pre, width, d.cells, hidden, out);
      column_sums<scalar_t>(rows, hidden, pre + hidden, width, d.cells, hidden, out + hidden);
      column_sums<scalar_t>(rows, hidden, pre + 3 * hidden, width, d.new_cells, hidden,
                            out + 2 * hidden);
    }
    if (layer_norm) {
      layer_norm_input_grads<scalar_t>(
          rows, width, grad_pre.data_ptr<scalar_t>(), ln_ih_w.data_ptr<scalar_t>(),
          n_ih.data_ptr<scalar_t>(), r_ih.data_ptr<scalar_t>(), n_hh.data_ptr<scalar_t>(),
          grad_bias.data_ptr<scalar_t>(), grad_ln_ih_w.data_ptr<scalar_t>(),
          grad_ln_hh_w.data_ptr<scalar_t>());
    }
  });
  if (layer_norm) {
    grad_ln_ih_b = grad_bias.clone();
    grad_ln_hh_b = grad_bias.clone();
    if (!has_bias) grad_bias = Tensor();
  }
  Tensor grad_x, grad_weight_ih, grad_weight_hh;
  const Tensor& grad_input_product = grad_pre;  // dL/d(W_ih x), after the LN_ih backward
  if (needs[0]) {
    grad_x = matrix_product(grad_input_product.view({rows, width}), weight_ih)
                 .view({steps, batch, weight_ih.size(1)});
  }
  // without layer norm dW_ih and dW_hh read the same gradient: one transposed copy of it
  const Tensor rows_ih = needs[1] || (needs[2] && !layer_norm) ? gradient_rows(grad_input_product)
                                                                : Tensor();
  if (needs[1]) grad_weight_ih = weight_gradient_from_rows(rows_ih, x);
  if (needs[2]) {
    const Tensor inputs = get(recurrent_inputs) ? *recurrent_inputs : hiddens.narrow(0, 0, steps);
    grad_weight_hh = weight_gradient_from_rows(
        layer_norm ? gradient_rows(grad_from_hidden, kScratchRows2) : rows_ih, inputs);
  }
  return {grad_x,       carry_h,
          grad_c,       grad_weight_ih,
          grad_weight_hh, grad_bias,
          grad_ln_ih_w, grad_ln_ih_b,
          grad_ln_hh_w, grad_ln_hh_b,
          grad_ln_c_w,  grad_ln_c_b,
          grad_peephole, hidden_grads,
          cell_grads};
}

}  // namespace rnnkit
