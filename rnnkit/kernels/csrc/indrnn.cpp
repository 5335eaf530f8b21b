// IndRNN (Li et al. 2018), forward and backward through time; the loop of bptt/indrnn.py.
// h_t = phi(W_ih x_t + b + u * h_{t-1}) with phi relu or tanh and u one weight per unit: every
// (sequence, unit) pair is its own chain through time, so the whole recurrence is one parallel
// pass over those chains (no GEMM inside the loop, no barrier per step). The input projection
// of every step is one GEMM before it; the backward ends with GEMMs for dL/dx and dL/dW_ih.
// The operators are declared here (a fragment of the rnnkit library): this file is the family's
// whole kernel.
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <tuple>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include "common.h"

namespace rnnkit {
namespace {

#define RNNKIT_INDRNN_NO_AUTOCAST \
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset)

// Subnormal floats flushed to zero (FTZ) and read as zero (DAZ) while a chain loop runs, on the
// thread that runs it (the control register is per thread), restored after. A chain multiplies
// by u (|u| < 1 for most units) at every step, so over hundreds of steps its values and
// gradients sink below 1.2e-38, where x86 arithmetic takes a slow path: the backward of a
// T=1000 layer took 150 ms with them against 40 ms flushed (measured, H 64, batch 50). What is
// flushed is smaller than float's smallest normal number.
struct FlushSubnormals {
#if defined(__x86_64__) || defined(_M_X64)
  const unsigned int saved = _mm_getcsr();
  FlushSubnormals() { _mm_setcsr(saved | 0x8040u); }  // FTZ (bit 15) and DAZ (bit 6)
  ~FlushSubnormals() { _mm_setcsr(saved); }
#endif
};

// fn(row, begin, end): each (row, unit range) chain of a [batch, hidden] state, over the cores
template <typename F>
void on_chains(int64_t batch, int64_t hidden, int64_t steps, const F& fn) {
  const int64_t grain = std::max<int64_t>(16, kParallelGrain / std::max<int64_t>(steps, 1));
  at::parallel_for(0, batch * hidden, grain, [&](int64_t begin, int64_t end) {
    const FlushSubnormals flush;
    while (begin < end) {
      const int64_t row = begin / hidden, column = begin % hidden;
      const int64_t stop = std::min(hidden, column + (end - begin));
      fn(row, column, stop);
      begin += stop - column;
    }
  });
}

Tensor indrnn_forward(const Tensor& x_in, const Tensor& h0, const Tensor& weight_ih,
                      const Tensor& weight_hh_in, const OptionalTensor& bias, bool relu,
                      const OptionalTensor& mask_in) {
  RNNKIT_INDRNN_NO_AUTOCAST;
  const Tensor x = x_in.contiguous(), weight_hh = weight_hh_in.contiguous();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = h0.size(1);
  Tensor hiddens = at::empty({steps + 1, batch, hidden}, x.options());  // h_0 .. h_T
  hiddens[0].copy_(h0);
  // every step's input projection in one GEMM, straight into the slots of h_1 .. h_T
  Tensor projected = hiddens.narrow(0, 1, steps).view({steps * batch, hidden});
  input_projection(projected, x.view({steps * batch, features}), weight_ih, nullptr);
  const Tensor unit_bias = get(bias) ? bias->contiguous() : at::zeros({hidden}, x.options());
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "indrnn_forward", [&] {
    scalar_t* states = hiddens.data_ptr<scalar_t>();
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    const scalar_t* __restrict__ b = unit_bias.data_ptr<scalar_t>();
    const scalar_t* __restrict__ u = weight_hh.data_ptr<scalar_t>();
    on_chains(batch, hidden, steps, [&](int64_t row, int64_t begin, int64_t end) {
      for (int64_t t = 0; t < steps; ++t) {
        const scalar_t* __restrict__ old = states + (t * batch + row) * hidden;
        scalar_t* __restrict__ out = states + ((t + 1) * batch + row) * hidden;
        if (!running(mask_data, t, batch, row)) {
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) out[j] = old[j];
        } else if (relu) {
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) {
            const scalar_t pre = out[j] + b[j] + u[j] * old[j];
            out[j] = pre > scalar_t(0) ? pre : scalar_t(0);
          }
        } else {
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) out[j] = tanh_(out[j] + b[j] + u[j] * old[j]);
        }
      }
    });
  });
  return hiddens;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> indrnn_backward(
    const OptionalTensor& grad_output_in, const OptionalTensor& grad_h_n, const Tensor& x,
    const Tensor& weight_ih, const Tensor& weight_hh_in, const Tensor& hiddens,
    const OptionalTensor& mask_in, bool relu, bool record, bool has_bias,
    const c10::List<bool>& needs_list) {
  RNNKIT_INDRNN_NO_AUTOCAST;
  const std::vector<bool> needs(needs_list.begin(), needs_list.end());
  const Tensor weight_hh = weight_hh_in.contiguous();
  const int64_t steps = hiddens.size(0) - 1, batch = hiddens.size(1), hidden = hiddens.size(2);
  Tensor grad_pre = at::empty({steps, batch, hidden}, hiddens.options());
  Tensor grad_h = get(grad_h_n) ? grad_h_n->contiguous().clone()
                                : at::zeros({batch, hidden}, hiddens.options());
  Tensor hidden_grads = record ? at::empty({steps, batch, hidden}, hiddens.options()) : Tensor();
  const Tensor grad_output = get(grad_output_in) ? grad_output_in->contiguous() : Tensor();
  const Tensor mask = get(mask_in) ? mask_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(hiddens.scalar_type(), "indrnn_backward", [&] {
    scalar_t* grad_state = grad_h.data_ptr<scalar_t>();
    scalar_t* grad_pre_data = grad_pre.data_ptr<scalar_t>();
    const scalar_t* states = hiddens.data_ptr<scalar_t>();
    const scalar_t* outputs = grad_output.defined() ? grad_output.data_ptr<scalar_t>() : nullptr;
    const scalar_t* mask_data = mask.defined() ? mask.data_ptr<scalar_t>() : nullptr;
    scalar_t* recorded = record ? hidden_grads.data_ptr<scalar_t>() : nullptr;
    const scalar_t* __restrict__ u = weight_hh.data_ptr<scalar_t>();
    on_chains(batch, hidden, steps, [&](int64_t row, int64_t begin, int64_t end) {
      scalar_t* __restrict__ grad = grad_state + row * hidden;
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t at_row = (t * batch + row) * hidden;
        scalar_t* __restrict__ pre = grad_pre_data + at_row;
        scalar_t* __restrict__ seen = recorded ? recorded + at_row : nullptr;
        if (!running(mask_data, t, batch, row)) {  // held past the end: passes through as is
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) pre[j] = 0;
          if (seen) for (int64_t j = begin; j < end; ++j) seen[j] = 0;
          continue;
        }
        if (outputs) {
          const scalar_t* __restrict__ out = outputs + at_row;
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) grad[j] += out[j];
        }
        if (seen) for (int64_t j = begin; j < end; ++j) seen[j] = grad[j];
        const scalar_t* __restrict__ h = states + ((t + 1) * batch + row) * hidden;
        if (relu) {
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) {
            pre[j] = h[j] > scalar_t(0) ? grad[j] : scalar_t(0);
            grad[j] = pre[j] * u[j];
          }
        } else {
          RNNKIT_SIMD
          for (int64_t j = begin; j < end; ++j) {
            pre[j] = grad[j] * (1 - h[j] * h[j]);
            grad[j] = pre[j] * u[j];
          }
        }
      }
    });
  });
  Tensor grad_x, grad_weight_ih, grad_weight_hh, grad_bias;
  const Tensor flat = grad_pre.view({steps * batch, hidden});
  if (needs[0]) grad_x = matrix_product(flat, weight_ih).view({steps, batch, weight_ih.size(1)});
  if (needs[1]) grad_weight_ih = weight_gradient(grad_pre, x);
  if (needs[2]) grad_weight_hh = (grad_pre * hiddens.narrow(0, 0, steps)).sum({0, 1});
  if (has_bias && needs[3]) grad_bias = flat.sum(0);
  return {grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias, hidden_grads};
}

// Inference (csrc/infer.cpp): the forward keeps only h_0 .. h_T already; the output and h_n.
std::tuple<Tensor, Tensor> indrnn_infer(const Tensor& x, const Tensor& h0,
                                        const Tensor& weight_ih, const Tensor& weight_hh,
                                        const OptionalTensor& bias, bool relu,
                                        const OptionalTensor& mask) {
  const Tensor hiddens = indrnn_forward(x, h0, weight_ih, weight_hh, bias, relu, mask);
  const int64_t steps = hiddens.size(0) - 1;
  Tensor h_n = hiddens[steps].clone();
  Tensor output = hiddens.narrow(0, 1, steps);
  if (get(mask) != nullptr && output.numel() > 0) output.mul_(*mask);
  return {output, h_n};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "indrnn_infer(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, Tensor? bias, "
      "bool relu, Tensor? mask) -> (Tensor output, Tensor h_n)");
  m.def(
      "indrnn_forward(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, Tensor? bias, "
      "bool relu, Tensor? mask) -> Tensor hiddens");
  m.def(
      "indrnn_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor x, Tensor weight_ih, "
      "Tensor weight_hh, Tensor hiddens, Tensor? mask, bool relu, bool record, bool has_bias, "
      "bool[] needs) -> (Tensor grad_x, Tensor grad_h0, Tensor grad_weight_ih, "
      "Tensor grad_weight_hh, Tensor grad_bias, Tensor hidden_grads)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("indrnn_forward", &indrnn_forward);
  m.impl("indrnn_backward", &indrnn_backward);
  m.impl("indrnn_infer", &indrnn_infer);
}

}  // namespace rnnkit
