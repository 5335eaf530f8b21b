// Inference operators: the forward of every family and variant when no gradient will be asked
// for. They return (output, h_n[, c_n]) and keep only what the next step needs: the output
// [T, N, P] (the caller receives it anyway, and h_{t-1} is read from it), the running c_t in two
// [N, H] buffers used in turn, and no gates, per-step cells or GRU `hidden_new`.
//
// LSTM and GRU: the input projection is taken in blocks of a few steps (block_steps) into one
// small buffer reused by every block (scratch memory, so it stays in cache), instead of the
// training forward's whole [T, N, G] gate buffer that the backward needs. Inside a team of
// threads (common.h, on_unit_ranges) every thread projects a share of the gate columns of the
// block's rows (projected_columns).
//
// RNN and IndRNN: their training forwards already keep nothing but h_0 .. h_T (the output): the
// inference operators run them and return the output and h_n.
//
// The variants (layer norm, zoneout, recurrent dropout, peepholes, coupled gates): the training
// variant kernel runs on blocks of kVariantBlock steps, carrying (h, c) from block to block, and
// only each block's output is kept; the buffers the backward would read live for one block (a
// bounded [kVariantBlock, N, ...] instead of [T, N, ...]). The recurrent weight is packed once a
// block there, which is what the dedicated LSTM/GRU kernels above avoid.
//
// Under a ragged mask a finished row holds its state; after the loop the output is zeroed past
// each row's end, in place, as the training path's `output * mask` does.
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <tuple>

#include <cstdlib>

#include "common.h"
#include "variants.h"

namespace rnnkit {
namespace {

#define RNNKIT_INFER_NO_AUTOCAST \
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset)

using Triple = std::tuple<Tensor, Tensor, Tensor>;
using Pair = std::tuple<Tensor, Tensor>;

// Steps per input-projection block: about 256 rows per GEMM (a batch of one takes 32 steps at a
// time, reading W_ih once per 32 steps), the block buffer at most 2 MiB of float.
// A sequence whose whole projection fits whole_projection_limit() floats (64 MiB; the
// environment's RNNKIT_INFER_WHOLE_FLOATS, read each call, lets a test force the blocks) takes
// it in one GEMM before the time loop, as the training forward does: blocks projected inside
// the team by UnitColumnsGemm pack W_ih on every call, up to 1.7x slower at batch 1, hidden 1024.
int64_t whole_projection_limit() {
  const char* text = std::getenv("RNNKIT_INFER_WHOLE_FLOATS");
  return text != nullptr ? std::atoll(text) : (int64_t(1) << 24);
}

int64_t block_steps(int64_t steps, int64_t batch, int64_t width) {
  if (steps * std::max<int64_t>(1, batch) * width <= whole_projection_limit()) return steps;
  const int64_t rows = std::max<int64_t>(1, batch);
  const int64_t wanted = std::min<int64_t>(32, std::max<int64_t>(1, 256 / rows));
  const int64_t cap = std::max<int64_t>(1, (int64_t(1) << 19) / (rows * std::max<int64_t>(1, width)));
  return std::max<int64_t>(1, std::min(wanted, cap));
}

// The gate columns a thread projects for every row of a block. A team splitting the units
// projects its own units' columns (what its GEMM and gate math then read: no barrier). A team
// splitting the batch reads every column of its own rows, so the projection is shared out the
// same way by units and fenced by a barrier on each side (`shared`): each thread reads its
// share of W_ih once a block, not all of W_ih for its rows every step.
UnitRange projected_columns(const UnitRange& units, int64_t hidden) {
  UnitRange columns = units;
  if (units.independent && units.team > 1) {
    const int64_t groups = (hidden + kUnitGroup - 1) / kUnitGroup;
    columns.begin = std::min(hidden, groups * units.index / units.team * kUnitGroup);
    columns.end = std::min(hidden, groups * (units.index + 1) / units.team * kUnitGroup);
  }
  return columns;
}

constexpr int64_t kVariantBlock = 32;

// zero the output past each row's end (mask [T, N, 1]), in place
void zero_finished(Tensor& output, const OptionalTensor& mask) {
  if (get(mask) != nullptr && output.numel() > 0) output.mul_(*mask);
}

// One thread's input projection for a block: its gate columns of x_block @ W_ih^T. Built for the
// block's row count; a shorter last block builds its own (into another scratch slot).
template <typename scalar_t>
struct BlockProjection {
  const scalar_t* weight;
  int64_t features, gates, hidden;
  UnitRange units;
  std::unique_ptr<UnitColumnsGemm<scalar_t>> full, tail;
  int64_t full_rows = -1, tail_rows = -1;

  void run(int64_t rows, const scalar_t* x, scalar_t* out, int64_t ldc) {
    if (rows <= 0) return;
    if (full == nullptr || full_rows == rows) {
      if (full == nullptr) {
        full.reset(new UnitColumnsGemm<scalar_t>(rows, features, weight, features, true, gates,
                                                 hidden, units, kScratchGates2));
        full_rows = rows;
      }
      full->run(x, features, scalar_t(0), out, ldc);
      return;
    }
    if (tail == nullptr || tail_rows != rows) {
      tail.reset(new UnitColumnsGemm<scalar_t>(rows, features, weight, features, true, gates,
                                               hidden, units, kScratchGates3));
      tail_rows = rows;
    }
    tail->run(x, features, scalar_t(0), out, ldc);
  }

  // steps [t0, t1) of x (each `batch` rows) into `out`; a team that splits the batch (`shared`)
  // fences the block on both sides, since every thread then reads every column
  void run_block(int64_t t0, int64_t t1, int64_t batch, const scalar_t* x, scalar_t* out,
                 int64_t ldc, bool shared) {
    if (shared && t0 > 0) team_barrier();  // the last block read by everyone
    run((t1 - t0) * batch, x + t0 * batch * features, out, ldc);
    if (shared) team_barrier();  // all columns of the block written
  }
};

// ---- LSTM ---------------------------------------------------------------------------------------
Triple lstm_infer(const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in,
                  const Tensor& weight_ih_in, const Tensor& weight_hh_in,
                  const OptionalTensor& bias, const OptionalTensor& weight_hr_in,
                  const OptionalTensor& mask_in) {
  RNNKIT_INFER_NO_AUTOCAST;
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor weight_ih = weight_ih_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = c0.size(1), out_size = h0.size(1), width = 4 * hidden;
  const bool projected = get(weight_hr_in) != nullptr;
  const Tensor weight_hr = projected ? weight_hr_in->contiguous() : Tensor();
  Tensor output = at::empty({steps, batch, out_size}, x.options());
  Tensor c_n = at::empty({batch, hidden}, x.options());
  if (steps == 0 || batch == 0) {
    c_n.copy_(c0);
    return {output, h0.clone(), c_n};
  }
  Tensor c_other = at::empty({batch, hidden}, x.options());
  const int64_t block = block_steps(steps, batch, width);
  const bool whole = block >= steps;  // one projection GEMM up front, no blocks in the team
  Tensor gates = whole ? at::empty({steps, batch, width}, x.options())
                       : scratch(kScratchGates, {block, batch, width}, x.options());
  const Tensor gate_bias = get(bias) ? bias->contiguous() : at::zeros({width}, x.options());
  Tensor unprojected = projected ? at::empty({batch, hidden}, x.options()) : Tensor();
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  const int threads = team_size(batch * width * out_size, hidden);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_infer", [&] {
    scalar_t* gate_data = gates.data_ptr<scalar_t>();
    scalar_t* out_data = output.data_ptr<scalar_t>();
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* h0_data = h0.data_ptr<scalar_t>();
    const scalar_t* c0_data = c0.data_ptr<scalar_t>();
    // step t writes c_t into c_n or c_other, alternating so that step T-1 writes c_n
    scalar_t* const cell_buffers[2] = {c_n.data_ptr<scalar_t>(), c_other.data_ptr<scalar_t>()};
    auto cell_written = [&](int64_t t) { return cell_buffers[(steps - 1 - t) & 1]; };
    auto cell_read = [&](int64_t t) -> const scalar_t* {
      return t == 0 ? c0_data : cell_written(t - 1);
    };
    auto h_read = [&](int64_t t) -> const scalar_t* {
      return t == 0 ? h0_data : out_data + (t - 1) * batch * out_size;
    };
    scalar_t* raw = projected ? unprojected.data_ptr<scalar_t>() : nullptr;
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    const scalar_t* bias_data = gate_bias.data_ptr<scalar_t>();
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      const scalar_t* __restrict__ input = gate_data + ((t % block) * batch + row) * width;
      const scalar_t* __restrict__ forget = input + hidden;
      const scalar_t* __restrict__ cell = input + 2 * hidden;
      const scalar_t* __restrict__ output_gate = input + 3 * hidden;
      const scalar_t* __restrict__ c_old = cell_read(t) + row * hidden;
      scalar_t* __restrict__ c_new = cell_written(t) + row * hidden;
      scalar_t* __restrict__ h_new =
          projected ? raw + row * hidden : out_data + (t * batch + row) * out_size;
      const scalar_t* __restrict__ b = bias_data;
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) {
        const scalar_t i = sigmoid(input[j] + b[j]), f = sigmoid(forget[j] + b[hidden + j]);
        const scalar_t g = tanh_(cell[j] + b[2 * hidden + j]);
        const scalar_t o = sigmoid(output_gate[j] + b[3 * hidden + j]);
        const scalar_t c = f * c_old[j] + i * g;
        c_new[j] = c;
        h_new[j] = o * tanh_(c);
      }
      if (!running(mask_data, t, batch, row)) {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) c_new[j] = c_old[j];
        if (!projected) {
          const scalar_t* __restrict__ h_old = h_read(t) + row * out_size;
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) h_new[j] = h_old[j];
        }
      }
    };
    const scalar_t* weight_hh_data = weight_hh.data_ptr<scalar_t>();
    const scalar_t* weight_ih_data = weight_ih.data_ptr<scalar_t>();
    if (!projected) {
      if (whole) {
        Tensor flat_gates = gates.view({steps * batch, width});
        input_projection(flat_gates, x.view({steps * batch, features}), weight_ih, nullptr);
      }
      on_unit_ranges(threads, hidden, [&](UnitRange units) {
        const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), out_size, weight_hh_data,
                                                  out_size, true, 4, hidden, units);
        BlockProjection<scalar_t> projection{weight_ih_data, features, 4, hidden,
                                             projected_columns(units, hidden)};
        const int64_t first = units.row_begin;
        const bool shared = units.independent && units.team > 1;
        for (int64_t t0 = 0; t0 < steps; t0 += block) {
          const int64_t t1 = std::min(steps, t0 + block);
          if (!whole) projection.run_block(t0, t1, batch, x_data, gate_data, width, shared);
          for (int64_t t = t0; t < t1; ++t) {
            scalar_t* gate_step = gate_data + ((t - t0) * batch + first) * width;
            recurrent.run(h_read(t) + first * out_size, out_size, scalar_t(1), gate_step, width);
            for (int64_t row = first; row < units.row_end; ++row)
              step_row(t, row, units.begin, units.end);
            units.barrier();  // all of h_t before the next step's GEMM
          }
        }
      }, batch);
      return;
    }
    const RecurrentGemm<scalar_t> recurrent(batch, width, out_size, weight_hh_data, out_size,
                                            true);
    const RecurrentGemm<scalar_t> projection(batch, out_size, hidden,
                                             weight_hr.data_ptr<scalar_t>(), hidden, true);
    for (int64_t t0 = 0; t0 < steps; t0 += block) {
      const int64_t t1 = std::min(steps, t0 + block);
      Tensor block_gates = gates.narrow(0, 0, t1 - t0).view({(t1 - t0) * batch, width});
      matmul_into(block_gates, x.narrow(0, t0, t1 - t0).view({(t1 - t0) * batch, features}),
                  weight_ih.t(), false);
      for (int64_t t = t0; t < t1; ++t) {
        const scalar_t* h_previous = h_read(t);
        scalar_t* h_next = out_data + t * batch * out_size;
        recurrent.run(h_previous, out_size, scalar_t(1), gate_data + (t - t0) * batch * width,
                      width);
        for_each_segment(batch, hidden, [&](int64_t row, int64_t begin, int64_t end) {
          step_row(t, row, begin, end);
        });
        projection.run(raw, hidden, scalar_t(0), h_next, out_size);
        for (int64_t row = 0; row < batch; ++row) {
          if (running(mask_data, t, batch, row)) continue;
          std::memcpy(h_next + row * out_size, h_previous + row * out_size,
                      sizeof(scalar_t) * out_size);
        }
      }
    }
  });
  Tensor h_n = output[steps - 1].clone();
  zero_finished(output, mask_in);
  return {output, h_n, c_n};
}

// ---- GRU ----------------------------------------------------------------------------------------
Pair gru_infer(const Tensor& x_in, const Tensor& h0_in, const Tensor& weight_ih_in,
               const Tensor& weight_hh_in, const OptionalTensor& bias_ih,
               const OptionalTensor& bias_hh, const OptionalTensor& mask_in) {
  RNNKIT_INFER_NO_AUTOCAST;
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor weight_ih = weight_ih_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = h0.size(1), width = 3 * hidden;
  Tensor output = at::empty({steps, batch, hidden}, x.options());
  if (steps == 0 || batch == 0) return {output, h0.clone()};
  const int64_t block = block_steps(steps, batch, width);
  const bool whole = block >= steps;  // one projection GEMM up front, no blocks in the team
  Tensor gates = whole ? at::empty({steps, batch, width}, x.options())
                       : scratch(kScratchGates, {block, batch, width}, x.options());
  Tensor from_hidden = at::empty({batch, width}, x.options());  // one step's h W_hh^T
  const Tensor recurrent_bias =
      get(bias_hh) ? bias_hh->contiguous() : at::zeros({width}, x.options());
  const Tensor input_bias = get(bias_ih) ? bias_ih->contiguous() : at::zeros({width}, x.options());
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  const int threads = team_size(batch * width * hidden, hidden);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_infer", [&] {
    scalar_t* gate_data = gates.data_ptr<scalar_t>();
    scalar_t* out_data = output.data_ptr<scalar_t>();
    scalar_t* from_hidden_data = from_hidden.data_ptr<scalar_t>();
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* h0_data = h0.data_ptr<scalar_t>();
    const scalar_t* bias_data = recurrent_bias.data_ptr<scalar_t>();
    const scalar_t* input_bias_data = input_bias.data_ptr<scalar_t>();
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    auto h_read = [&](int64_t t) -> const scalar_t* {
      return t == 0 ? h0_data : out_data + (t - 1) * batch * hidden;
    };
    auto step_row = [&](int64_t t, int64_t row, int64_t begin, int64_t end) {
      const scalar_t* __restrict__ reset = gate_data + ((t % block) * batch + row) * width;
      const scalar_t* __restrict__ update = reset + hidden;
      const scalar_t* __restrict__ candidate = reset + 2 * hidden;
      const scalar_t* __restrict__ from_h = from_hidden_data + row * width;
      const scalar_t* __restrict__ b = bias_data;
      const scalar_t* __restrict__ bi = input_bias_data;
      const scalar_t* __restrict__ h_old = h_read(t) + row * hidden;
      scalar_t* __restrict__ h_new = out_data + (t * batch + row) * hidden;
      if (!running(mask_data, t, batch, row)) {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) h_new[j] = h_old[j];
        return;
      }
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) {
        const scalar_t r = sigmoid((reset[j] + bi[j]) + (from_h[j] + b[j]));
        const scalar_t z =
            sigmoid((update[j] + bi[hidden + j]) + (from_h[hidden + j] + b[hidden + j]));
        const scalar_t hn = from_h[2 * hidden + j] + b[2 * hidden + j];
        const scalar_t n = tanh_((candidate[j] + bi[2 * hidden + j]) + r * hn);
        h_new[j] = n + z * (h_old[j] - n);  // (1 - z) n + z h
      }
    };
    const scalar_t* weight_ih_data = weight_ih.data_ptr<scalar_t>();
    if (whole) {
      Tensor flat_gates = gates.view({steps * batch, width});
      input_projection(flat_gates, x.view({steps * batch, features}), weight_ih, nullptr);
    }
    on_unit_ranges(threads, hidden, [&](UnitRange units) {
      const UnitColumnsGemm<scalar_t> recurrent(units.row_count(), hidden,
                                                weight_hh.data_ptr<scalar_t>(), hidden, true, 3,
                                                hidden, units);
      BlockProjection<scalar_t> projection{weight_ih_data, features, 3, hidden,
                                           projected_columns(units, hidden)};
      const int64_t first = units.row_begin;
      const bool shared = units.independent && units.team > 1;
      for (int64_t t0 = 0; t0 < steps; t0 += block) {
        const int64_t t1 = std::min(steps, t0 + block);
        if (!whole) projection.run_block(t0, t1, batch, x_data, gate_data, width, shared);
        for (int64_t t = t0; t < t1; ++t) {
          recurrent.run(h_read(t) + first * hidden, hidden, scalar_t(0),
                        from_hidden_data + first * width, width);
          for (int64_t row = first; row < units.row_end; ++row)
            step_row(t, row, units.begin, units.end);
          units.barrier();
        }
      }
    }, batch);
  });
  Tensor h_n = output[steps - 1].clone();
  zero_finished(output, mask_in);
  return {output, h_n};
}

// ---- RNN: the training forward already keeps only h_0 .. h_T ------------------------------------
Pair output_and_last(const Tensor& hiddens, const OptionalTensor& mask) {
  const int64_t steps = hiddens.size(0) - 1;
  Tensor h_n = hiddens[steps].clone();
  Tensor output = hiddens.narrow(0, 1, steps);
  zero_finished(output, mask);
  return {output, h_n};
}

Pair rnn_infer(const Tensor& x, const Tensor& h0, const Tensor& weight_ih,
               const Tensor& weight_hh, const OptionalTensor& bias, bool relu,
               const OptionalTensor& mask) {
  RNNKIT_INFER_NO_AUTOCAST;
  return output_and_last(rnn_forward(x, h0, weight_ih, weight_hh, bias, relu, mask).at(0), mask);
}

// ---- the variants: the training kernel on blocks of kVariantBlock steps ------------------------
OptionalTensor steps_of(const OptionalTensor& tensor, int64_t t0, int64_t count) {
  if (get(tensor) == nullptr) return tensor;
  return tensor->narrow(0, t0, count);
}

Triple lstm_variant_infer(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& weight_ih,
    const Tensor& weight_hh, const OptionalTensor& bias, const OptionalTensor& ln_ih_weight,
    const OptionalTensor& ln_ih_bias, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& ln_hh_bias, const OptionalTensor& ln_cell_weight,
    const OptionalTensor& ln_cell_bias, const OptionalTensor& peephole,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& zone_c, bool coupled, const OptionalTensor& mask) {
  RNNKIT_INFER_NO_AUTOCAST;
  const int64_t steps = x.size(0);
  Tensor output = at::empty({steps, x.size(1), h0.size(1)}, x.options());
  Tensor h = h0, c = c0;
  for (int64_t t0 = 0; t0 < steps; t0 += kVariantBlock) {
    const int64_t count = std::min(kVariantBlock, steps - t0);
    const std::vector<Tensor> buffers = lstm_variant_forward(
        x.narrow(0, t0, count), h, c, weight_ih, weight_hh, bias, ln_ih_weight, ln_ih_bias,
        ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole, recurrent_mask,
        steps_of(zone_h, t0, count), steps_of(zone_c, t0, count), coupled,
        steps_of(mask, t0, count));
    output.narrow(0, t0, count).copy_(buffers[0].narrow(0, 1, count));
    h = buffers[0][count];
    c = buffers[1][count];
  }
  h = h.clone();
  c = c.clone();
  zero_finished(output, mask);
  return {output, h, c};
}

Pair gru_variant_infer(const Tensor& x, const Tensor& h0, const Tensor& weight_ih,
                       const Tensor& weight_hh, const OptionalTensor& bias_ih,
                       const OptionalTensor& bias_hh, const OptionalTensor& ln_ih_weight,
                       const OptionalTensor& ln_ih_bias, const OptionalTensor& ln_hh_weight,
                       const OptionalTensor& ln_hh_bias, const OptionalTensor& recurrent_mask,
                       const OptionalTensor& zone_h, const OptionalTensor& mask) {
  RNNKIT_INFER_NO_AUTOCAST;
  const int64_t steps = x.size(0);
  Tensor output = at::empty({steps, x.size(1), h0.size(1)}, x.options());
  Tensor h = h0;
  for (int64_t t0 = 0; t0 < steps; t0 += kVariantBlock) {
    const int64_t count = std::min(kVariantBlock, steps - t0);
    const std::vector<Tensor> buffers = gru_variant_forward(
        x.narrow(0, t0, count), h, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
        ln_ih_bias, ln_hh_weight, ln_hh_bias, recurrent_mask, steps_of(zone_h, t0, count),
        steps_of(mask, t0, count));
    output.narrow(0, t0, count).copy_(buffers[0].narrow(0, 1, count));
    h = buffers[0][count];
  }
  h = h.clone();
  zero_finished(output, mask);
  return {output, h};
}

Pair rnn_variant_infer(const Tensor& x, const Tensor& h0, const Tensor& weight_ih,
                       const Tensor& weight_hh, const OptionalTensor& bias, bool relu,
                       const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
                       const OptionalTensor& mask) {
  RNNKIT_INFER_NO_AUTOCAST;
  const int64_t steps = x.size(0);
  Tensor output = at::empty({steps, x.size(1), h0.size(1)}, x.options());
  Tensor h = h0;
  for (int64_t t0 = 0; t0 < steps; t0 += kVariantBlock) {
    const int64_t count = std::min(kVariantBlock, steps - t0);
    const std::vector<Tensor> buffers = rnn_variant_forward(
        x.narrow(0, t0, count), h, weight_ih, weight_hh, bias, relu, recurrent_mask,
        steps_of(zone_h, t0, count), steps_of(mask, t0, count));
    output.narrow(0, t0, count).copy_(buffers[0].narrow(0, 1, count));
    h = buffers[0][count];
  }
  h = h.clone();
  zero_finished(output, mask);
  return {output, h};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "lstm_infer(Tensor x, Tensor h0, Tensor c0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias, Tensor? weight_hr, Tensor? mask) -> (Tensor output, Tensor h_n, Tensor c_n)");
  m.def(
      "gru_infer(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, Tensor? bias_ih, "
      "Tensor? bias_hh, Tensor? mask) -> (Tensor output, Tensor h_n)");
  m.def(
      "rnn_infer(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, Tensor? bias, "
      "bool relu, Tensor? mask) -> (Tensor output, Tensor h_n)");
  m.def(
      "lstm_variant_infer(Tensor x, Tensor h0, Tensor c0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias, Tensor? ln_ih_weight, Tensor? ln_ih_bias, Tensor? ln_hh_weight, "
      "Tensor? ln_hh_bias, Tensor? ln_cell_weight, Tensor? ln_cell_bias, Tensor? peephole, "
      "Tensor? recurrent_mask, Tensor? zone_h, Tensor? zone_c, bool coupled, Tensor? mask) "
      "-> (Tensor output, Tensor h_n, Tensor c_n)");
  m.def(
      "gru_variant_infer(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias_ih, Tensor? bias_hh, Tensor? ln_ih_weight, Tensor? ln_ih_bias, "
      "Tensor? ln_hh_weight, Tensor? ln_hh_bias, Tensor? recurrent_mask, Tensor? zone_h, "
      "Tensor? mask) -> (Tensor output, Tensor h_n)");
  m.def(
      "rnn_variant_infer(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias, bool relu, Tensor? recurrent_mask, Tensor? zone_h, Tensor? mask) "
      "-> (Tensor output, Tensor h_n)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_infer", &lstm_infer);
  m.impl("gru_infer", &gru_infer);
  m.impl("rnn_infer", &rnn_infer);
  m.impl("lstm_variant_infer", &lstm_variant_infer);
  m.impl("gru_variant_infer", &gru_variant_infer);
  m.impl("rnn_variant_infer", &rnn_variant_infer);
}

}  // namespace rnnkit
