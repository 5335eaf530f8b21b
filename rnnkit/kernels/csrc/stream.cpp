// Streaming operators: one time step (T = 1) of a whole stack of layers, every layer and
// direction in one call, for a model fed one step at a time with the state it returned
// (`out, state = layer(x_t, state)` under no_grad). What a call costs there is mostly fixed
// cost, so everything happens here: the input and recurrent products, the gates and the new
// state, layer after layer, written into the three tensors returned (output, h_n[, c_n]) and a
// per-thread scratch buffer; nothing is packed per call and nothing is kept for a backward
// (the operators have none: the layers call them only when no gradient can be asked for).
//
//   lstm_step / gru_step / rnn_step(x, h0[, c0], weights, num_layers, bidirectional, has_bias,
//                                    [relu,] variant options)
//   x        [1, N, I] (time-major), [N, 1, I] (batch first) or [1, I] (unbatched): one step
//   h0       [L * D, N, P] ([L * D, P] unbatched), or None for zeros; c0 [L * D, N, H] (LSTM)
//   weights  torch.nn's flat list: per layer, per direction, weight_ih [G, I_l],
//            weight_hh [G, P], then bias_ih [G] and bias_hh [G] with has_bias, then the LSTM's
//            weight_hr [P, H] when projected (G = gates * H; I_l = I, or D * P above layer 0);
//            with layer_norm then ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias [G] (and
//            the LSTM's ln_cell_weight, ln_cell_bias [H]); with peephole peephole_weight [3H]
//   returns  output x.shape[:-1] + [D * P], h_n and c_n shaped as h0 and c0
//
// The variants' step in eval (rnnkit.cells): layer norm of each product over its G values and
// of the LSTM's cell over H, peepholes, coupled gates, and zoneout's expectation (a share
// zoneout_h / zoneout_c of the previous state kept); recurrent dropout and weight drop do
// nothing in eval. Training's random masks are not drawn here: the layers call the general
// path for those. A step with a variant computes every product first, then normalises whole
// rows, then runs its pointwise pass(es).
//
// At a batch of up to kDotMaxRows rows every gate pre-activation is a dot product of a weight
// row, read where it lies, with x_t or h_{t-1}: four weight rows at a time (four accumulator
// chains), the batch's rows inside so each weight row is read once. Above it a step is a small
// GEMM: two BLAS calls into scratch, then the pointwise pass. A step with enough multiply-adds
// (kParallelMacs, as the sequence kernels) splits the hidden units over the cores: each thread
// computes every gate of its own units and their new state, so a layer needs no barrier
// inside; the layers run one after the other. Activations are common.h's, so a step gives the
// sequence kernels' numbers to rounding.
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <tuple>

#include "common.h"
#include "variants.h"

namespace rnnkit {
namespace {

enum class StepCell { kLSTM, kGRU, kRNNTanh, kRNNRelu };

constexpr int64_t kDotMaxRows = 4;  // batch rows taken as dot products; more: a GEMM

// out[n * ldo + r] = dot(w[r * k : (r + 1) * k], v[n * ldv : n * ldv + k]) for r < rows,
// n < vectors: four weight rows at a time, read once for all the vectors (common.h's
// few_rows_times_transposed, on one core: the caller splits the units)
template <typename scalar_t>
void dot_rows(const scalar_t* w, int64_t rows, int64_t k, const scalar_t* v, int64_t ldv,
              int64_t vectors, scalar_t* out, int64_t ldo) {
  few_rows_times_transposed(vectors, rows, k, v, ldv, w, k, false, out, ldo, false);
}

// 64-byte aligned pieces of one scratch allocation
template <typename scalar_t>
struct Carve {
  scalar_t* next;
  scalar_t* take(int64_t count) {
    scalar_t* piece = next;
    next += (count + 15) / 16 * 16;
    return piece;
  }
};

template <typename scalar_t>
struct DirectionWeights {
  const scalar_t *ih, *hh, *bias_ih, *bias_hh, *hr;
  int64_t features;  // this layer's input size
  // the variants' parameters, or nullptr: layer-norm gains and biases, peepholes (i, f, o)
  const scalar_t *ln_ih_weight = nullptr, *ln_ih_bias = nullptr, *ln_hh_weight = nullptr,
                 *ln_hh_bias = nullptr, *ln_cell_weight = nullptr, *ln_cell_bias = nullptr,
                 *peephole = nullptr;
};

// The eval-mode variant options of a step (the parameters are in DirectionWeights).
struct StepVariants {
  bool layer_norm = false, peephole = false, coupled = false;
  double zoneout_h = 0, zoneout_c = 0;
  bool any() const {
    return layer_norm || peephole || coupled || zoneout_h != 0 || zoneout_c != 0;
  }
};

// One unit j of torch's GRU from one row's products (gi = W_ih x, gh = W_hh h_{t-1}, each 3H
// wide: reset, update, new) and the biases: h_t = (1 - z) n + z h_{t-1}.
template <typename scalar_t>
RNNKIT_INLINE scalar_t gru_unit(const scalar_t* __restrict__ gi, const scalar_t* __restrict__ gh,
                                const scalar_t* __restrict__ bi, const scalar_t* __restrict__ bh,
                                scalar_t h_old, int64_t hidden, int64_t j) {
  const scalar_t r = sigmoid((gi[j] + bi[j]) + (gh[j] + bh[j]));
  const scalar_t z =
      sigmoid((gi[hidden + j] + bi[hidden + j]) + (gh[hidden + j] + bh[hidden + j]));
  const scalar_t hn = gh[2 * hidden + j] + bh[2 * hidden + j];
  const scalar_t candidate = tanh_((gi[2 * hidden + j] + bi[2 * hidden + j]) + r * hn);
  return candidate + z * (h_old - candidate);
}

// One unit j of the Elman RNN: tanh (or relu) of (W_ih x + W_hh h_{t-1}) + (b_ih + b_hh).
template <typename scalar_t>
RNNKIT_INLINE scalar_t rnn_unit(const scalar_t* __restrict__ gi, const scalar_t* __restrict__ gh,
                                const scalar_t* __restrict__ bi, const scalar_t* __restrict__ bh,
                                bool relu, int64_t j) {
  const scalar_t pre = (gi[j] + gh[j]) + (bi[j] + bh[j]);
  return relu ? (pre > scalar_t(0) ? pre : scalar_t(0)) : tanh_(pre);
}

// row = LN(row) * gain + bias over `width` values, in place
template <typename scalar_t>
void normalize_row(scalar_t* __restrict__ row, int64_t width, const scalar_t* __restrict__ gain,
                   const scalar_t* __restrict__ bias) {
  const auto [mean, rstd] = row_statistics(row, width);
  RNNKIT_SIMD
  for (int64_t j = 0; j < width; ++j) row[j] = (row[j] - mean) * rstd * gain[j] + bias[j];
}

template <typename scalar_t>
class StackStep {
 public:
  StackStep(StepCell cell, int64_t batch, int64_t hidden, int64_t out_size,
            StepVariants variants)
      : cell_(cell), batch_(batch), hidden_(hidden), out_size_(out_size),
        gates_(cell == StepCell::kLSTM ? 4 : cell == StepCell::kGRU ? 3 : 1),
        width_(gates_ * hidden), variants_(variants) {}

  // One layer, one direction: h_new [N, P] (and c_new [N, H]) from input [N, ld_input] and
  // h_old, c_old. pre_ih, pre_hh: [N, G] scratch; raw: [N, H] scratch (projection only).
  void run(const DirectionWeights<scalar_t>& w, const scalar_t* input, int64_t ld_input,
           const scalar_t* h_old, const scalar_t* c_old, scalar_t* h_new, scalar_t* c_new,
           scalar_t* pre_ih, scalar_t* pre_hh, scalar_t* raw) const {
    const bool projected = w.hr != nullptr;
    scalar_t* h_target = projected ? raw : h_new;
    const int64_t ld_target = projected ? hidden_ : out_size_;
    const int64_t macs = batch_ * width_ * (w.features + out_size_);
    const bool parallel = macs >= kParallelMacs && at::get_num_threads() > 1 &&
                          !at::in_parallel_region();
    if (variants_.any()) {
      run_variant(w, input, ld_input, h_old, c_old, h_new, c_new, pre_ih, pre_hh, raw, parallel);
      return;
    }
    if (batch_ <= kDotMaxRows) {
      auto units = [&](int64_t begin, int64_t end) {
        for (int64_t gate = 0; gate < gates_; ++gate) {
          const int64_t row = gate * hidden_ + begin;
          dot_rows(w.ih + row * w.features, end - begin, w.features, input, ld_input, batch_,
                   pre_ih + row, width_);
          dot_rows(w.hh + row * out_size_, end - begin, out_size_, h_old, out_size_, batch_,
                   pre_hh + row, width_);
        }
        for (int64_t n = 0; n < batch_; ++n)
          pointwise(w, n, begin, end, pre_ih, pre_hh, h_old, c_old, h_target, ld_target, c_new);
      };
      on_units(parallel, units);
    } else {
      gemm<scalar_t>(false, true, batch_, width_, w.features, scalar_t(1), input, ld_input, w.ih,
                     w.features, scalar_t(0), pre_ih, width_);
      gemm<scalar_t>(false, true, batch_, width_, out_size_, scalar_t(1), h_old, out_size_, w.hh,
                     out_size_, scalar_t(0), pre_hh, width_);
      for_each_segment(batch_, hidden_, [&](int64_t n, int64_t begin, int64_t end) {
        pointwise(w, n, begin, end, pre_ih, pre_hh, h_old, c_old, h_target, ld_target, c_new);
      });
    }
    if (!projected) return;
    // h_new = raw @ W_hr^T: every unit of raw first, then the P outputs
    if (batch_ <= kDotMaxRows) {
      const bool wide = batch_ * out_size_ * hidden_ >= kParallelMacs;
      auto rows = [&](int64_t begin, int64_t end) {
        dot_rows(w.hr + begin * hidden_, end - begin, hidden_, raw, hidden_, batch_,
                 h_new + begin, out_size_);
      };
      if (wide && parallel) {
        at::parallel_for(0, out_size_, kUnitGroup, rows);
      } else {
        rows(0, out_size_);
      }
    } else {
      gemm<scalar_t>(false, true, batch_, out_size_, hidden_, scalar_t(1), raw, hidden_, w.hr,
                     hidden_, scalar_t(0), h_new, out_size_);
    }
  }

 private:
  // pre_ih = input @ W_ih^T, pre_hh = h_old @ W_hh^T, every row and gate
  void products(const DirectionWeights<scalar_t>& w, const scalar_t* input, int64_t ld_input,
                const scalar_t* h_old, scalar_t* pre_ih, scalar_t* pre_hh, bool parallel) const {
    if (batch_ <= kDotMaxRows) {
      on_units(parallel, [&](int64_t begin, int64_t end) {
        for (int64_t gate = 0; gate < gates_; ++gate) {
          const int64_t row = gate * hidden_ + begin;
          dot_rows(w.ih + row * w.features, end - begin, w.features, input, ld_input, batch_,
                   pre_ih + row, width_);
          dot_rows(w.hh + row * out_size_, end - begin, out_size_, h_old, out_size_, batch_,
                   pre_hh + row, width_);
        }
      });
      return;
    }
    gemm<scalar_t>(false, true, batch_, width_, w.features, scalar_t(1), input, ld_input, w.ih,
                   w.features, scalar_t(0), pre_ih, width_);
    gemm<scalar_t>(false, true, batch_, width_, out_size_, scalar_t(1), h_old, out_size_, w.hh,
                   out_size_, scalar_t(0), pre_hh, width_);
  }

  // A step with variants (no projection: the layers refuse it with them): the products, the
  // rows' layer norm, then the pointwise pass; the LSTM's cell norm needs every unit's c_t
  // first, so it takes a second pass.
  void run_variant(const DirectionWeights<scalar_t>& w, const scalar_t* input, int64_t ld_input,
                   const scalar_t* h_old_all, const scalar_t* c_old_all, scalar_t* h_all,
                   scalar_t* c_all, scalar_t* pre_ih, scalar_t* pre_hh, scalar_t* raw,
                   bool parallel) const {
    products(w, input, ld_input, h_old_all, pre_ih, pre_hh, parallel);
    const int64_t hidden = hidden_, width = width_;
    if (variants_.layer_norm) {
      for_each_row(batch_, 2 * width, [&](int64_t n) {
        normalize_row(pre_ih + n * width, width, w.ln_ih_weight, w.ln_ih_bias);
        normalize_row(pre_hh + n * width, width, w.ln_hh_weight, w.ln_hh_bias);
      });
    }
    const scalar_t keep_h = scalar_t(variants_.zoneout_h), keep_c = scalar_t(variants_.zoneout_c);
    const scalar_t* __restrict__ bi = w.bias_ih;
    const scalar_t* __restrict__ bh = w.bias_hh;
    if (cell_ != StepCell::kLSTM) {  // the GRU's and the RNN's h_t, then zoneout
      const bool gru = cell_ == StepCell::kGRU, relu = cell_ == StepCell::kRNNRelu;
      for_each_segment(batch_, hidden, [&](int64_t n, int64_t begin, int64_t end) {
        const scalar_t* __restrict__ gi = pre_ih + n * width;
        const scalar_t* __restrict__ gh = pre_hh + n * width;
        const scalar_t* __restrict__ h_old = h_old_all + n * hidden;
        scalar_t* __restrict__ h = h_all + n * hidden;
        if (gru) {
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) {
            const scalar_t next = gru_unit(gi, gh, bi, bh, h_old[j], hidden, j);
            h[j] = keep_h * h_old[j] + (scalar_t(1) - keep_h) * next;
          }
          return;
        }
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) {
          const scalar_t next = rnn_unit(gi, gh, bi, bh, relu, j);
          h[j] = keep_h * h_old[j] + (scalar_t(1) - keep_h) * next;
        }
      });
      return;
    }
    // LSTM: c_t (before zoneout) into raw and o_t over pre_ih's output block; then, with the
    // cell's norm, h_t = o_t tanh(LN(c_t)), else o_t tanh(c_t); then zoneout
    const bool peephole = w.peephole != nullptr, coupled = variants_.coupled;
    const scalar_t* __restrict__ p = w.peephole;
    for_each_segment(batch_, hidden, [&](int64_t n, int64_t begin, int64_t end) {
      scalar_t* __restrict__ gi = pre_ih + n * width;
      const scalar_t* __restrict__ gh = pre_hh + n * width;
      const scalar_t* __restrict__ c_old = c_old_all + n * hidden;
      scalar_t* __restrict__ c_raw = raw + n * hidden;
      RNNKIT_SIMD
      for (int64_t j = begin; j < end; ++j) {
        scalar_t a_i = (gi[j] + gh[j]) + (bi[j] + bh[j]);
        scalar_t a_f = (gi[hidden + j] + gh[hidden + j]) + (bi[hidden + j] + bh[hidden + j]);
        const scalar_t a_g =
            (gi[2 * hidden + j] + gh[2 * hidden + j]) + (bi[2 * hidden + j] + bh[2 * hidden + j]);
        scalar_t a_o =
            (gi[3 * hidden + j] + gh[3 * hidden + j]) + (bi[3 * hidden + j] + bh[3 * hidden + j]);
        if (peephole) {
          a_i += p[j] * c_old[j];
          a_f += p[hidden + j] * c_old[j];
        }
        const scalar_t f = sigmoid(a_f);
        const scalar_t i = coupled ? scalar_t(1) - f : sigmoid(a_i);
        const scalar_t c = f * c_old[j] + i * tanh_(a_g);
        if (peephole) a_o += p[2 * hidden + j] * c;
        c_raw[j] = c;
        gi[3 * hidden + j] = sigmoid(a_o);
      }
    });
    for_each_row(batch_, hidden, [&](int64_t n) {
      const scalar_t* __restrict__ o = pre_ih + n * width + 3 * hidden;
      const scalar_t* __restrict__ c_raw = raw + n * hidden;
      const scalar_t* __restrict__ c_old = c_old_all + n * hidden;
      const scalar_t* __restrict__ h_old = h_old_all + n * hidden;
      scalar_t* __restrict__ h = h_all + n * hidden;
      scalar_t* __restrict__ c_new = c_all + n * hidden;
      scalar_t mean = 0, rstd = 1;
      if (variants_.layer_norm) std::tie(mean, rstd) = row_statistics(c_raw, hidden);
      const scalar_t* __restrict__ gain = w.ln_cell_weight;
      const scalar_t* __restrict__ shift = w.ln_cell_bias;
      const bool norm = variants_.layer_norm;
      RNNKIT_SIMD
      for (int64_t j = 0; j < hidden; ++j) {
        const scalar_t shown = norm ? (c_raw[j] - mean) * rstd * gain[j] + shift[j] : c_raw[j];
        const scalar_t next = o[j] * tanh_(shown);
        h[j] = keep_h * h_old[j] + (scalar_t(1) - keep_h) * next;
        c_new[j] = keep_c * c_old[j] + (scalar_t(1) - keep_c) * c_raw[j];
      }
    });
  }

  template <typename F>
  void on_units(bool parallel, const F& units) const {
    if (!parallel) {
      units(0, hidden_);
      return;
    }
    const int64_t groups = (hidden_ + kUnitGroup - 1) / kUnitGroup;
    at::parallel_for(0, groups, 1, [&](int64_t first, int64_t last) {
      units(first * kUnitGroup, std::min(hidden_, last * kUnitGroup));
    });
  }

  // the new state of batch row n, units [begin, end)
  void pointwise(const DirectionWeights<scalar_t>& w, int64_t n, int64_t begin, int64_t end,
                 const scalar_t* pre_ih_all, const scalar_t* pre_hh_all, const scalar_t* h_old_all,
                 const scalar_t* c_old_all, scalar_t* h_all, int64_t ld_h,
                 scalar_t* c_all) const {
    const int64_t hidden = hidden_;
    const scalar_t* __restrict__ gi = pre_ih_all + n * width_;
    const scalar_t* __restrict__ gh = pre_hh_all + n * width_;
    const scalar_t* __restrict__ bi = w.bias_ih;
    const scalar_t* __restrict__ bh = w.bias_hh;
    scalar_t* __restrict__ h = h_all + n * ld_h;
    switch (cell_) {
      case StepCell::kLSTM: {
        const scalar_t* __restrict__ c_old = c_old_all + n * hidden;
        scalar_t* __restrict__ c_new = c_all + n * hidden;
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) {
          const scalar_t i = sigmoid((gi[j] + gh[j]) + (bi[j] + bh[j]));
          const scalar_t f = sigmoid((gi[hidden + j] + gh[hidden + j]) +
                                     (bi[hidden + j] + bh[hidden + j]));
          const scalar_t g = tanh_((gi[2 * hidden + j] + gh[2 * hidden + j]) +
                                   (bi[2 * hidden + j] + bh[2 * hidden + j]));
          const scalar_t o = sigmoid((gi[3 * hidden + j] + gh[3 * hidden + j]) +
                                     (bi[3 * hidden + j] + bh[3 * hidden + j]));
          const scalar_t c = f * c_old[j] + i * g;
          c_new[j] = c;
          h[j] = o * tanh_(c);
        }
        break;
      }
      case StepCell::kGRU: {
        const scalar_t* __restrict__ h_old = h_old_all + n * hidden;
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) h[j] = gru_unit(gi, gh, bi, bh, h_old[j], hidden, j);
        break;
      }
      case StepCell::kRNNTanh: {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) h[j] = rnn_unit(gi, gh, bi, bh, false, j);
        break;
      }
      case StepCell::kRNNRelu: {
        RNNKIT_SIMD
        for (int64_t j = begin; j < end; ++j) h[j] = rnn_unit(gi, gh, bi, bh, true, j);
        break;
      }
    }
  }

  StepCell cell_;
  int64_t batch_, hidden_, out_size_, gates_, width_;
  StepVariants variants_;
};

// rows of x: one step of N sequences, whatever the layout
int64_t step_rows(const Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 2 || x.dim() == 3, "rnnkit::", op, ": x must be [1, N, I], [N, 1, I] "
              "or [1, I], got ", x.sizes());
  TORCH_CHECK(x.size(0) == 1 || (x.dim() == 3 && x.size(1) == 1), "rnnkit::", op,
              ": x must hold one step, got ", x.sizes());
  return x.dim() == 3 ? x.size(0) * x.size(1) : 1;
}

std::vector<int64_t> state_shape(const Tensor& x, int64_t slots, int64_t batch, int64_t size) {
  if (x.dim() == 3) return {slots, batch, size};
  return {slots, size};
}

Tensor given_state(const OptionalTensor& given, const std::vector<int64_t>& shape,
                   const Tensor& x, const char* what, const char* op) {
  if (get(given) == nullptr) return at::zeros(shape, x.options());
  TORCH_CHECK(given->sizes() == at::IntArrayRef(shape), "rnnkit::", op, ": ", what,
              " must have shape ", at::IntArrayRef(shape), ", got ", given->sizes());
  TORCH_CHECK(given->scalar_type() == x.scalar_type() && given->device() == x.device(),
              "rnnkit::", op, ": ", what, " must match x's dtype and device");
  return given->contiguous();
}

// What each entry of a layer's (and direction's) part of the weights list is.
enum class WeightKind { kIh, kHh, kBias, kHr, kGateNorm, kCellNorm, kPeephole };

// The whole stack, one step: (output, h_n, c_n); c_n undefined except for the LSTM.
std::tuple<Tensor, Tensor, Tensor> stack_step(StepCell cell, const char* op, const Tensor& x_in,
                                              const OptionalTensor& h0_in,
                                              const OptionalTensor& c0_in,
                                              const std::vector<Tensor>& weights_in,
                                              int64_t num_layers, bool bidirectional,
                                              bool has_bias, const StepVariants& variants) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const bool lstm = cell == StepCell::kLSTM;
  TORCH_CHECK(num_layers >= 1, "rnnkit::", op, ": num_layers must be positive");
  TORCH_CHECK(lstm || cell == StepCell::kGRU || !variants.layer_norm, "rnnkit::", op,
              ": the RNN has no layer norm");
  TORCH_CHECK(lstm || !(variants.peephole || variants.coupled || variants.zoneout_c != 0),
              "rnnkit::", op, ": peepholes, coupled gates and cell zoneout are the LSTM's");
  const int64_t batch = step_rows(x_in, op);
  const int64_t directions = bidirectional ? 2 : 1, slots = num_layers * directions;
  // one slot's entries, in the list's order; the projection only without variants
  std::vector<WeightKind> kinds = {WeightKind::kIh, WeightKind::kHh};
  if (has_bias) kinds.insert(kinds.end(), 2, WeightKind::kBias);
  const int64_t plain = int64_t(kinds.size());
  if (variants.layer_norm) {
    kinds.insert(kinds.end(), 4, WeightKind::kGateNorm);
    if (lstm) kinds.insert(kinds.end(), 2, WeightKind::kCellNorm);
  }
  if (variants.peephole) kinds.push_back(WeightKind::kPeephole);
  const int64_t per = int64_t(weights_in.size()) / std::max<int64_t>(slots, 1);
  const bool projected = lstm && !variants.any() && per == plain + 1;
  if (projected) kinds.push_back(WeightKind::kHr);
  TORCH_CHECK(int64_t(weights_in.size()) == int64_t(kinds.size()) * slots, "rnnkit::", op,
              ": weights must hold, for each of ", slots, " layers and directions, weight_ih, "
              "weight_hh", has_bias ? ", bias_ih, bias_hh" : "",
              lstm && !variants.any() ? " (and weight_hr)" : "",
              variants.layer_norm ? ", the layer-norm gains and biases" : "",
              variants.peephole ? ", peephole_weight" : "", "; got ", weights_in.size(),
              " tensors");
  const int64_t gates = lstm ? 4 : cell == StepCell::kGRU ? 3 : 1;
  const Tensor& first_ih = weights_in[0];
  TORCH_CHECK(first_ih.dim() == 2 && first_ih.size(0) % gates == 0, "rnnkit::", op,
              ": weight_ih must be [gates * H, I], got ", first_ih.sizes());
  const int64_t hidden = first_ih.size(0) / gates, width = gates * hidden;
  const int64_t out_size = projected ? weights_in[per - 1].size(0) : hidden;
  const int64_t features = x_in.size(-1);
  const Tensor x = x_in.contiguous();
  std::vector<Tensor> weights;
  weights.reserve(weights_in.size());
  for (int64_t slot = 0; slot < slots; ++slot) {
    const int64_t layer = slot / directions;
    const int64_t layer_input = layer == 0 ? features : directions * out_size;
    for (int64_t k = 0; k < per; ++k) {
      const Tensor& w = weights_in[slot * per + k];
      TORCH_CHECK(w.scalar_type() == x.scalar_type() && w.device() == x.device(), "rnnkit::", op,
                  ": every weight must match x's dtype (", x.scalar_type(), ") and device");
      std::vector<int64_t> expected;
      switch (kinds[k]) {
        case WeightKind::kIh: expected = {width, layer_input}; break;
        case WeightKind::kHh: expected = {width, out_size}; break;
        case WeightKind::kBias: case WeightKind::kGateNorm: expected = {width}; break;
        case WeightKind::kHr: expected = {out_size, hidden}; break;
        case WeightKind::kCellNorm: expected = {hidden}; break;
        case WeightKind::kPeephole: expected = {3 * hidden}; break;
      }
      TORCH_CHECK(w.sizes() == at::IntArrayRef(expected), "rnnkit::", op, ": weight ", k,
                  " of layer ", layer, " must have shape ", at::IntArrayRef(expected), ", got ",
                  w.sizes());
      weights.push_back(w.contiguous());
    }
  }
  const auto h_shape = state_shape(x, slots, batch, out_size);
  const auto c_shape = state_shape(x, slots, batch, hidden);
  const Tensor h0 = given_state(h0_in, h_shape, x, "h0", op);
  const Tensor c0 = lstm ? given_state(c0_in, c_shape, x, "c0", op) : Tensor();
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = directions * out_size;
  Tensor output = at::empty(out_shape, x.options());
  Tensor h_n = at::empty(h_shape, x.options());
  Tensor c_n = lstm ? at::empty(c_shape, x.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "stack_step", [&] {
    const int64_t joined = directions * out_size;  // a layer's output row
    // pre_ih, pre_hh [N, G]; two layer outputs [N, D * P] used in turn; raw [N, H]; zero bias
    const int64_t floats = 2 * batch * width + 2 * batch * joined + batch * hidden + width +
                           6 * 16;
    void* memory = scratch_bytes(kScratchGates, floats * int64_t(sizeof(scalar_t)));
    std::unique_ptr<scalar_t[]> owned;
    if (memory == nullptr) {
      owned.reset(new scalar_t[size_t(floats) + 16]);
      memory = owned.get();
    }
    Carve<scalar_t> carve{static_cast<scalar_t*>(memory)};
    scalar_t* pre_ih = carve.take(batch * width);
    scalar_t* pre_hh = carve.take(batch * width);
    scalar_t* layer_out[2] = {carve.take(batch * joined), carve.take(batch * joined)};
    scalar_t* raw = carve.take(batch * hidden);
    scalar_t* zero_bias = carve.take(width);
    if (!has_bias) std::fill(zero_bias, zero_bias + width, scalar_t(0));
    const StackStep<scalar_t> step(cell, batch, hidden, out_size, variants);
    const scalar_t* input = x.data_ptr<scalar_t>();
    int64_t ld_input = features;
    scalar_t* h_n_data = h_n.data_ptr<scalar_t>();
    scalar_t* c_n_data = c_n.defined() ? c_n.data_ptr<scalar_t>() : nullptr;
    const scalar_t* h0_data = h0.data_ptr<scalar_t>();
    const scalar_t* c0_data = c0.defined() ? c0.data_ptr<scalar_t>() : nullptr;
    for (int64_t layer = 0; layer < num_layers; ++layer) {
      for (int64_t direction = 0; direction < directions; ++direction) {
        const int64_t slot = layer * directions + direction;
        const Tensor* w = weights.data() + slot * per;
        DirectionWeights<scalar_t> dw{
            w[0].data_ptr<scalar_t>(), w[1].data_ptr<scalar_t>(),
            has_bias ? w[2].data_ptr<scalar_t>() : zero_bias,
            has_bias ? w[3].data_ptr<scalar_t>() : zero_bias,
            projected ? w[per - 1].data_ptr<scalar_t>() : nullptr,
            layer == 0 ? features : joined};
        if (variants.layer_norm) {
          dw.ln_ih_weight = w[plain].data_ptr<scalar_t>();
          dw.ln_ih_bias = w[plain + 1].data_ptr<scalar_t>();
          dw.ln_hh_weight = w[plain + 2].data_ptr<scalar_t>();
          dw.ln_hh_bias = w[plain + 3].data_ptr<scalar_t>();
          if (lstm) {
            dw.ln_cell_weight = w[plain + 4].data_ptr<scalar_t>();
            dw.ln_cell_bias = w[plain + 5].data_ptr<scalar_t>();
          }
        }
        if (variants.peephole) dw.peephole = w[per - 1].data_ptr<scalar_t>();
        step.run(dw, input, ld_input, h0_data + slot * batch * out_size,
                 c0_data ? c0_data + slot * batch * hidden : nullptr,
                 h_n_data + slot * batch * out_size,
                 c_n_data ? c_n_data + slot * batch * hidden : nullptr, pre_ih, pre_hh, raw);
      }
      // this layer's output [N, D * P]: h_n's rows side by side (the next layer's input); one
      // direction's is h_n's slot itself, read in place
      const bool last = layer == num_layers - 1;
      const scalar_t* states = h_n_data + layer * directions * batch * out_size;
      if (directions == 1 && !last) {
        input = states;
        ld_input = out_size;
        continue;
      }
      scalar_t* target = last ? output.data_ptr<scalar_t>() : layer_out[layer & 1];
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t direction = 0; direction < directions; ++direction)
          std::memcpy(target + n * joined + direction * out_size,
                      states + (direction * batch + n) * out_size, sizeof(scalar_t) * out_size);
      input = target;
      ld_input = joined;
    }
  });
  return {output, h_n, c_n};
}

std::tuple<Tensor, Tensor, Tensor> lstm_step(const Tensor& x, const OptionalTensor& h0,
                                             const OptionalTensor& c0,
                                             const std::vector<Tensor>& weights,
                                             int64_t num_layers, bool bidirectional,
                                             bool has_bias, bool layer_norm, bool peephole,
                                             bool coupled, double zoneout_h, double zoneout_c) {
  return stack_step(StepCell::kLSTM, "lstm_step", x, h0, c0, weights, num_layers, bidirectional,
                    has_bias, StepVariants{layer_norm, peephole, coupled, zoneout_h, zoneout_c});
}

std::tuple<Tensor, Tensor> gru_step(const Tensor& x, const OptionalTensor& h0,
                                    const std::vector<Tensor>& weights, int64_t num_layers,
                                    bool bidirectional, bool has_bias, bool layer_norm,
                                    double zoneout_h) {
  const auto result = stack_step(StepCell::kGRU, "gru_step", x, h0, std::nullopt, weights,
                                 num_layers, bidirectional, has_bias,
                                 StepVariants{layer_norm, false, false, zoneout_h, 0});
  return {std::get<0>(result), std::get<1>(result)};
}

std::tuple<Tensor, Tensor> rnn_step(const Tensor& x, const OptionalTensor& h0,
                                    const std::vector<Tensor>& weights, int64_t num_layers,
                                    bool bidirectional, bool has_bias, bool relu,
                                    double zoneout_h) {
  const auto result =
      stack_step(relu ? StepCell::kRNNRelu : StepCell::kRNNTanh, "rnn_step", x, h0,
                 std::nullopt, weights, num_layers, bidirectional, has_bias,
                 StepVariants{false, false, false, zoneout_h, 0});
  return {std::get<0>(result), std::get<1>(result)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "lstm_step(Tensor x, Tensor? h0, Tensor? c0, Tensor[] weights, int num_layers, "
      "bool bidirectional, bool has_bias, bool layer_norm=False, bool peephole=False, "
      "bool coupled=False, float zoneout_h=0., float zoneout_c=0.) "
      "-> (Tensor output, Tensor h_n, Tensor c_n)");
  m.def(
      "gru_step(Tensor x, Tensor? h0, Tensor[] weights, int num_layers, bool bidirectional, "
      "bool has_bias, bool layer_norm=False, float zoneout_h=0.) "
      "-> (Tensor output, Tensor h_n)");
  m.def(
      "rnn_step(Tensor x, Tensor? h0, Tensor[] weights, int num_layers, bool bidirectional, "
      "bool has_bias, bool relu, float zoneout_h=0.) -> (Tensor output, Tensor h_n)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_step", &lstm_step);
  m.impl("gru_step", &gru_step);
  m.impl("rnn_step", &rnn_step);
}

}  // namespace rnnkit
