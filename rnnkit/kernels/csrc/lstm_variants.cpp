// The LSTM with its variants (layer norm, peepholes, coupled gates, zoneout, recurrent
// dropout), forward and backward through time: the loop of bptt/lstm_variants.py.
// Each loop is templated on <kLayerNorm, kPeephole, kCoupled, kZoneout>, chosen once per call,
// so every combination compiles to its own tight pass; recurrent dropout and the ragged mask
// are per-row branches outside the inner loops.
//
// Shapes (see common.h; no projection, P = H, G = 4H in the order input, forget, cell, output):
//   gates            [T, N, 4H]  the input projection (after LN_ih, + b_ih + b_hh), then the
//                                post-activation gates (input = 1 - forget when coupled)
//   hiddens, cells   [T + 1, N, H]  states after zoneout and the ragged hold
//   new_cells        [T, N, H]   c_t before zoneout: what h_t is read from (a view of
//                                cells[1:] without zoneout)
//   recurrent_inputs [T, N, H]   h_{t-1} * recurrent_mask (recurrent dropout only)
//   normalized_ih/hh [T, N, 4H], normalized_cell [T, N, H], rstd_* [T, N]   (layer norm only)
//   peephole [3H] (input, forget, output), recurrent_mask [N, H], zone_h/zone_c [T, N, H]
#include "variants.h"

namespace rnnkit {

namespace {

template <typename scalar_t>
struct LSTMVariantData {
  int64_t steps = 0, batch = 0, hidden = 0;
  scalar_t* gates = nullptr;
  scalar_t* hiddens = nullptr;
  scalar_t* cells = nullptr;
  scalar_t* new_cells = nullptr;
  scalar_t* from_hidden = nullptr;        // [N, 4H] one step's W_hh h' (layer norm)
  scalar_t* recurrent_inputs = nullptr;   // [T, N, H] or null
  const scalar_t* recurrent_mask = nullptr;
  ZoneRows<scalar_t> zone_h, zone_c;
  scalar_t* normalized_hh = nullptr;
  scalar_t* rstd_hh = nullptr;
  scalar_t* normalized_cell = nullptr;
  scalar_t* rstd_cell = nullptr;
  const scalar_t* ln_hh_weight = nullptr;
  const scalar_t* ln_hh_bias = nullptr;
  const scalar_t* ln_cell_weight = nullptr;
  const scalar_t* ln_cell_bias = nullptr;
  const scalar_t* peephole = nullptr;
  const scalar_t* mask = nullptr;
  const scalar_t* weight_hh = nullptr;
  const scalar_t* gate_bias = nullptr;  // [4H] b_ih + b_hh, added in the gate math (no layer norm)
  int threads = 1;  // the team running the time loop
};

template <typename scalar_t, bool kLayerNorm, bool kPeephole, bool kCoupled, bool kZoneout>
void forward_loop(const LSTMVariantData<scalar_t>& d) {
  const int64_t batch = d.batch, hidden = d.hidden, width = 4 * hidden;
  // the gate math of units [begin, end) of one row at step t (with layer norm: the whole row)
  auto gate_math = [&](int64_t t, int64_t row, int64_t begin, int64_t end) RNNKIT_FLATTEN {
    scalar_t* step_gates = d.gates + t * batch * width;
    const scalar_t* h_previous = d.hiddens + t * batch * hidden;
    scalar_t* h_next = d.hiddens + (t + 1) * batch * hidden;
    const scalar_t* c_previous = d.cells + t * batch * hidden;
    scalar_t* c_next = d.cells + (t + 1) * batch * hidden;
    const int64_t step_row = t * batch + row;
    scalar_t* __restrict__ pre = step_gates + row * width;
    if constexpr (kLayerNorm) {  // LN_hh over the 4H pre-activations from h'
      const scalar_t* __restrict__ z = d.from_hidden + row * width;
      scalar_t* __restrict__ kept = d.normalized_hh + step_row * width;
      const scalar_t* __restrict__ gain = d.ln_hh_weight;
      const scalar_t* __restrict__ shift = d.ln_hh_bias;
      const auto [mean, rstd] = row_statistics(z, width);
      d.rstd_hh[step_row] = rstd;
      RNNKIT_SIMD
      for (int64_t j = 0; j < width; ++j) {
        const scalar_t n = (z[j] - mean) * rstd;
        kept[j] = n;
        pre[j] += n * gain[j] + shift[j];
      }
    }
    scalar_t* __restrict__ input = pre;
    scalar_t* __restrict__ forget = pre + hidden;
    scalar_t* __restrict__ cell = pre + 2 * hidden;
    scalar_t* __restrict__ output = pre + 3 * hidden;
    const scalar_t* __restrict__ c_old = c_previous + row * hidden;
    const scalar_t* __restrict__ h_old = h_previous + row * hidden;
    scalar_t* __restrict__ c_new = c_next + row * hidden;
    scalar_t* __restrict__ h_new = h_next + row * hidden;
    scalar_t* __restrict__ c_unzoned = kZoneout ? d.new_cells + step_row * hidden : nullptr;
    const scalar_t* __restrict__ peep = d.peephole;
    const scalar_t* __restrict__ b = d.gate_bias;
    const scalar_t* __restrict__ zone_h = d.zone_h.at(step_row);
    const scalar_t* __restrict__ zone_c = d.zone_c.at(step_row);
    RNNKIT_SIMD
    for (int64_t j = begin; j < end; ++j) {
      const scalar_t c_prev = c_old[j];
      scalar_t pre_input = input[j], pre_forget = forget[j], pre_output = output[j];
      scalar_t pre_cell = cell[j];
      if constexpr (!kLayerNorm) {  // with layer norm the bias came after LN_ih
        pre_input += b[j];
        pre_forget += b[hidden + j];
        pre_cell += b[2 * hidden + j];
        pre_output += b[3 * hidden + j];
      }
      if constexpr (kPeephole) {
        pre_input += peep[j] * c_prev;
        pre_forget += peep[hidden + j] * c_prev;
      }
      const scalar_t f = sigmoid(pre_forget);
      scalar_t i;
      if constexpr (kCoupled) {
        i = 1 - f;
      } else {
        i = sigmoid(pre_input);
      }
      const scalar_t g = tanh_(pre_cell);
      const scalar_t c = f * c_prev + i * g;  // keep some of the old memory, add some new
      if constexpr (kPeephole) pre_output += peep[2 * hidden + j] * c;
      const scalar_t o = sigmoid(pre_output);
      input[j] = i;
      forget[j] = f;
      cell[j] = g;
      output[j] = o;
      if constexpr (kZoneout) {
        c_unzoned[j] = c;
        c_new[j] = c + zone_c[j] * (c_prev - c);  // lerp(c, c_{t-1}, zone)
      } else {
        c_new[j] = c;
      }
      if constexpr (!kLayerNorm) {
        const scalar_t h = o * tanh_(c);
        if constexpr (kZoneout) {
          h_new[j] = h + zone_h[j] * (h_old[j] - h);
        } else {
          h_new[j] = h;
        }
      }
    }
    if constexpr (kLayerNorm) {  // h = o * tanh(LN_cell(c))
      scalar_t* __restrict__ kept = d.normalized_cell + step_row * hidden;
      const scalar_t* __restrict__ gain = d.ln_cell_weight;
      const scalar_t* __restrict__ shift = d.ln_cell_bias;
      const scalar_t* c = kZoneout ? c_unzoned : c_new;  // based on them: no restrict
      const auto [mean, rstd] = row_statistics<scalar_t>(c, hidden);
      d.rstd_cell[step_row] = rstd;
      RNNKIT_SIMD
      for (int64_t j = 0; j < hidden; ++j) {
        const scalar_t n = (c[j] - mean) * rstd;
        kept[j] = n;
        const scalar_t h = output[j] * tanh_(n * gain[j] + shift[j]);
        if constexpr (kZoneout) {
          h_new[j] = h + zone_h[j] * (h_old[j] - h);
        } else {
          h_new[j] = h;
        }
      }
    }
    if (!running(d.mask, t, batch, row)) {  // finished: hold the state
      std::memcpy(c_new + begin, c_old + begin, sizeof(scalar_t) * (end - begin));
      std::memcpy(h_new + begin, h_old + begin, sizeof(scalar_t) * (end - begin));
    }
    if (d.recurrent_mask != nullptr && t + 1 < d.steps) {  // h_t * mask, the next GEMM's input
      scalar_t* __restrict__ dropped = d.recurrent_inputs + ((t + 1) * batch + row) * hidden;
      const scalar_t* __restrict__ keep = d.recurrent_mask + row * hidden;
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) dropped[j] = h_new[j] * keep[j];
    }
  };
  // a team of threads (see on_unit_ranges): with enough sequences each runs its own through
  // every step, no barriers; else each owns hidden units, its GEMM columns and its units' gate
  // math, and as layer norm needs whole rows, there the gate math is split by rows and a step
  // takes a second barrier
  on_unit_ranges(d.threads, hidden, [&](UnitRange units) {
    const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden, d.weight_hh, hidden,
                                              true, 4, hidden, units);
    const int64_t first = units.row_begin;
    const auto [first_row, last_row] = units.rows(batch);
    if (d.recurrent_mask != nullptr) {  // variational dropout: one mask for every step
      drop_first_state(units, hidden, d.hiddens, d.recurrent_mask, d.recurrent_inputs);
    }
    for (int64_t t = 0; t < d.steps; ++t) {
      const scalar_t* gemm_input = d.recurrent_mask != nullptr
                                       ? d.recurrent_inputs + (t * batch + first) * hidden
                                       : d.hiddens + (t * batch + first) * hidden;
      if constexpr (kLayerNorm) {
        recurrent.run(gemm_input, hidden, scalar_t(0), d.from_hidden + first * width,
                      width);  // h' W_hh^T
        units.barrier();  // LN_hh reads whole rows
        for (int64_t row = first_row; row < last_row; ++row) gate_math(t, row, 0, hidden);
      } else {
        recurrent.run(gemm_input, hidden, scalar_t(1), d.gates + (t * batch + first) * width,
                      width);
        for (int64_t row = first; row < units.row_end; ++row)
          gate_math(t, row, units.begin, units.end);
      }
      units.barrier();  // all of h_t before the next step's GEMM
    }
  }, batch);
}

}  // namespace

std::vector<Tensor> lstm_variant_forward(
    const Tensor& x_in, const Tensor& h0, const Tensor& c0, const Tensor& weight_ih,
    const Tensor& weight_hh_in, const OptionalTensor& bias, const OptionalTensor& ln_ih_weight,
    const OptionalTensor& ln_ih_bias, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& ln_hh_bias, const OptionalTensor& ln_cell_weight,
    const OptionalTensor& ln_cell_bias, const OptionalTensor& peephole_in,
    const OptionalTensor& recurrent_mask_in, const OptionalTensor& zone_h,
    const OptionalTensor& zone_c, bool coupled, const OptionalTensor& mask_in) {
  const Tensor x = x_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = c0.size(1), width = 4 * hidden;
  const auto options = x.options();
  const bool layer_norm = get(ln_ih_weight) != nullptr;
  const bool zoneout = get(zone_h) != nullptr || get(zone_c) != nullptr;
  Tensor hiddens = at::empty({steps + 1, batch, hidden}, options);  // h_0 .. h_T
  Tensor cells = at::empty({steps + 1, batch, hidden}, options);    // c_0 .. c_T
  // c_t before zoneout; without zoneout that is c_t itself (held rows differ, but the backward
  // never reads a held row), so no second [T, N, H] is written
  Tensor new_cells = zoneout ? at::empty({steps, batch, hidden}, options)
                             : cells.narrow(0, 1, steps);
  Tensor gates = at::empty({steps, batch, width}, options);
  hiddens[0].copy_(h0);
  cells[0].copy_(c0);
  const Tensor recurrent_mask = contiguous_or_empty(recurrent_mask_in);
  Tensor recurrent_inputs = recurrent_mask.defined()
                                ? at::empty({steps, batch, hidden}, options) : Tensor();
  Tensor normalized_ih, rstd_ih, normalized_hh, rstd_hh, normalized_cell, rstd_cell, from_hidden;
  Tensor gates_flat = gates.view({steps * batch, width});
  const Tensor flat = x.view({steps * batch, features});
  const Tensor ln_ih_w = contiguous_or_empty(ln_ih_weight), ln_ih_b = contiguous_or_empty(ln_ih_bias);
  const Tensor ln_hh_w = contiguous_or_empty(ln_hh_weight), ln_hh_b = contiguous_or_empty(ln_hh_bias);
  const Tensor ln_c_w = contiguous_or_empty(ln_cell_weight);
  const Tensor ln_c_b = contiguous_or_empty(ln_cell_bias);
  const Tensor bias_all = contiguous_or_empty(bias);
  if (layer_norm) {
    normalized_ih = at::empty({steps, batch, width}, options);
    rstd_ih = at::empty({steps, batch}, options);
    normalized_hh = at::empty({steps, batch, width}, options);
    rstd_hh = at::empty({steps, batch}, options);
    normalized_cell = at::empty({steps, batch, hidden}, options);
    rstd_cell = at::empty({steps, batch}, options);
    from_hidden = at::empty({batch, width}, options);
    input_projection(gates_flat, flat, weight_ih, nullptr);  // LN_ih comes before the bias
  }
  // without layer norm the bias joins in the gate math (no copy of it over every step's gates)
  const Tensor gate_bias = layer_norm || !bias_all.defined() ? at::zeros({width}, options)
                                                             : bias_all;
  const int threads = team_size(batch * width * hidden, hidden);
  if (!layer_norm) input_projection(gates_flat, flat, weight_ih, nullptr);
  const Tensor peephole = contiguous_or_empty(peephole_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_variant_forward", [&] {
    if (layer_norm) {
      layer_norm_rows<scalar_t>(gates.data_ptr<scalar_t>(), steps * batch, width,
                                ln_ih_w.data_ptr<scalar_t>(), ln_ih_b.data_ptr<scalar_t>(),
                                pointer<scalar_t>(bias_all), normalized_ih.data_ptr<scalar_t>(),
                                rstd_ih.data_ptr<scalar_t>());
    }
    LSTMVariantData<scalar_t> d;
    d.steps = steps;
    d.batch = batch;
    d.hidden = hidden;
    d.gates = gates.data_ptr<scalar_t>();
    d.hiddens = hiddens.data_ptr<scalar_t>();
    d.cells = cells.data_ptr<scalar_t>();
    d.new_cells = new_cells.data_ptr<scalar_t>();
    d.from_hidden = mutable_pointer<scalar_t>(from_hidden);
    d.recurrent_inputs = mutable_pointer<scalar_t>(recurrent_inputs);
    d.recurrent_mask = pointer<scalar_t>(recurrent_mask);
    d.zone_h = zone_rows<scalar_t>(zone_h, hidden, options);
    d.zone_c = zone_rows<scalar_t>(zone_c, hidden, options);
    d.normalized_hh = mutable_pointer<scalar_t>(normalized_hh);
    d.rstd_hh = mutable_pointer<scalar_t>(rstd_hh);
    d.normalized_cell = mutable_pointer<scalar_t>(normalized_cell);
    d.rstd_cell = mutable_pointer<scalar_t>(rstd_cell);
    d.ln_hh_weight = pointer<scalar_t>(ln_hh_w);
    d.ln_hh_bias = pointer<scalar_t>(ln_hh_b);
    d.ln_cell_weight = pointer<scalar_t>(ln_c_w);
    d.ln_cell_bias = pointer<scalar_t>(ln_c_b);
    d.peephole = pointer<scalar_t>(peephole);
    d.mask = pointer<scalar_t>(mask);
    d.weight_hh = weight_hh.data_ptr<scalar_t>();
    d.gate_bias = gate_bias.data_ptr<scalar_t>();
    d.threads = threads;
    with_flag(layer_norm, [&](auto norm) {
      with_flag(peephole.defined(), [&](auto peep) {
        with_flag(coupled, [&](auto couple) {
          with_flag(zoneout, [&](auto zone) {
            forward_loop<scalar_t, decltype(norm)::value, decltype(peep)::value,
                         decltype(couple)::value, decltype(zone)::value>(d);
          });
        });
      });
    });
  });
  return {hiddens,       cells,   new_cells,       gates,    recurrent_inputs,
          normalized_ih, rstd_ih, normalized_hh,   rstd_hh,  normalized_cell,
          rstd_cell};
}

}  // namespace rnnkit
