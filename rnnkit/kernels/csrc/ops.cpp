// The fused kernels as torch operators in the `rnnkit` namespace (torch.ops.rnnkit.*): typed
// schemas with named returns, CPU implementations here; the fake (meta) implementations and the
// autograd registrations live in rnnkit/kernels/ops.py. Shapes: see common.h and variants.h.
//
// An undefined tensor in a return is None in Python (as aten's native_layer_norm_backward does
// with its output_mask): which ones are None follows the flags (`needs`, `record`, `has_bias`)
// and the optional inputs, exactly as the fake implementations say. No return aliases an input,
// another return or the per-thread scratch memory (opcheck checks it): the LSTM and RNN
// variants' new_cells / new_hiddens, a view of cells[1:] / hiddens[1:] without zoneout, are
// returned as None then, and the backward ops take that None back as that view.
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <tuple>

#include "common.h"
#include "variants.h"

namespace rnnkit {
namespace {

using Tensors = std::vector<Tensor>;

// The kernels pick their own precision: the ATen calls inside them must not be autocast (the
// operators have no autocast kernel, so autocast falls through to here still switched on).
#define RNNKIT_NO_AUTOCAST c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset)
using Bools = const c10::List<bool>&;  // the schema's bool[]

template <size_t... I>
auto as_tuple(const Tensors& results, std::index_sequence<I...>) {
  return std::make_tuple(results[I]...);
}

template <size_t N>
auto as_tuple(const Tensors& results) {
  TORCH_CHECK(results.size() == N, "rnnkit: a kernel returned ", results.size(),
              " tensors, its schema names ", N);
  return as_tuple(results, std::make_index_sequence<N>{});
}

std::vector<bool> flags(Bools needs) {
  std::vector<bool> out;
  out.reserve(needs.size());
  for (const bool need : needs) out.push_back(need);
  return out;
}

// A forward output that is a view of the full buffer (no zoneout): None across the boundary.
Tensor unless_view_of(const Tensor& tensor, const Tensor& owner) {
  return tensor.defined() && tensor.is_alias_of(owner) ? Tensor() : tensor;
}

Tensor or_steps_of(const OptionalTensor& given, const Tensor& buffer) {
  return get(given) ? *given : buffer.narrow(0, 1, buffer.size(0) - 1);
}

std::tuple<Tensor, Tensor, Tensor> lstm_forward_op(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& weight_ih,
    const Tensor& weight_hh, const OptionalTensor& bias, const OptionalTensor& weight_hr,
    const OptionalTensor& mask) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<3>(lstm_forward(x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask));
}

auto lstm_backward_op(const OptionalTensor& grad_output, const OptionalTensor& grad_h_n,
                      const OptionalTensor& grad_c_n, const Tensor& x, const Tensor& weight_ih,
                      const Tensor& weight_hh, const OptionalTensor& weight_hr,
                      const Tensor& hiddens, const Tensor& cells, const Tensor& gates,
                      const OptionalTensor& mask, bool record, bool has_bias, Bools needs) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<9>(lstm_backward(grad_output, grad_h_n, grad_c_n, x, weight_ih, weight_hh,
                                   weight_hr, hiddens, cells, gates, mask, record, has_bias,
                                   flags(needs)));
}

std::tuple<Tensor, Tensor, Tensor> gru_forward_op(
    const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
    const OptionalTensor& bias_ih, const OptionalTensor& bias_hh, const OptionalTensor& mask) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<3>(gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask));
}

auto gru_backward_op(const OptionalTensor& grad_output, const OptionalTensor& grad_h_n,
                     const Tensor& x, const Tensor& weight_ih, const Tensor& weight_hh,
                     const Tensor& hiddens, const Tensor& gates, const Tensor& hidden_new,
                     const OptionalTensor& mask, bool record, bool has_bias, Bools needs) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<7>(gru_backward(grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates,
                                  hidden_new, mask, record, has_bias, flags(needs)));
}

Tensor rnn_forward_op(const Tensor& x, const Tensor& h0, const Tensor& weight_ih,
                      const Tensor& weight_hh, const OptionalTensor& bias, bool relu,
                      const OptionalTensor& mask) {
  RNNKIT_NO_AUTOCAST;
  return rnn_forward(x, h0, weight_ih, weight_hh, bias, relu, mask).at(0);
}

auto rnn_backward_op(const OptionalTensor& grad_output, const OptionalTensor& grad_h_n,
                     const Tensor& x, const Tensor& weight_ih, const Tensor& weight_hh,
                     const Tensor& hiddens, const OptionalTensor& mask, bool relu, bool record,
                     bool has_bias, Bools needs) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<6>(rnn_backward(grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask,
                                  relu, record, has_bias, flags(needs)));
}

auto lstm_variant_forward_op(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& weight_ih,
    const Tensor& weight_hh, const OptionalTensor& bias, const OptionalTensor& ln_ih_weight,
    const OptionalTensor& ln_ih_bias, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& ln_hh_bias, const OptionalTensor& ln_cell_weight,
    const OptionalTensor& ln_cell_bias, const OptionalTensor& peephole,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& zone_c, bool coupled, const OptionalTensor& mask) {
  RNNKIT_NO_AUTOCAST;
  Tensors results = lstm_variant_forward(
      x, h0, c0, weight_ih, weight_hh, bias, ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias,
      ln_cell_weight, ln_cell_bias, peephole, recurrent_mask, zone_h, zone_c, coupled, mask);
  results[2] = unless_view_of(results[2], results[1]);  // new_cells: cells[1:] without zoneout
  return as_tuple<11>(results);
}

auto lstm_variant_backward_op(
    const OptionalTensor& grad_output, const OptionalTensor& grad_h_n,
    const OptionalTensor& grad_c_n, const Tensor& x, const Tensor& weight_ih,
    const Tensor& weight_hh, const Tensor& hiddens, const Tensor& cells,
    const OptionalTensor& new_cells, const Tensor& gates, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& ln_cell_weight, const OptionalTensor& ln_cell_bias,
    const OptionalTensor& normalized_ih, const OptionalTensor& rstd_ih,
    const OptionalTensor& normalized_hh, const OptionalTensor& rstd_hh,
    const OptionalTensor& normalized_cell, const OptionalTensor& rstd_cell,
    const OptionalTensor& peephole, const OptionalTensor& recurrent_mask,
    const OptionalTensor& zone_h, const OptionalTensor& zone_c, bool coupled,
    const OptionalTensor& mask, bool record, bool has_bias, Bools needs) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<15>(lstm_variant_backward(
      grad_output, grad_h_n, grad_c_n, x, weight_ih, weight_hh, hiddens, cells,
      or_steps_of(new_cells, cells), gates, recurrent_inputs, ln_ih_weight, ln_hh_weight,
      ln_cell_weight, ln_cell_bias, normalized_ih, rstd_ih, normalized_hh, rstd_hh,
      normalized_cell, rstd_cell, peephole, recurrent_mask, zone_h, zone_c, coupled, mask, record,
      has_bias, flags(needs)));
}

auto gru_variant_forward_op(
    const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
    const OptionalTensor& bias_ih, const OptionalTensor& bias_hh,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_ih_bias,
    const OptionalTensor& ln_hh_weight, const OptionalTensor& ln_hh_bias,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& mask) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<8>(gru_variant_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh,
                                         ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias,
                                         recurrent_mask, zone_h, mask));
}

auto gru_variant_backward_op(
    const OptionalTensor& grad_output, const OptionalTensor& grad_h_n, const Tensor& x,
    const Tensor& weight_ih, const Tensor& weight_hh, const Tensor& hiddens, const Tensor& gates,
    const Tensor& hidden_new, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& ln_ih_weight, const OptionalTensor& ln_hh_weight,
    const OptionalTensor& normalized_ih, const OptionalTensor& rstd_ih,
    const OptionalTensor& normalized_hh, const OptionalTensor& rstd_hh,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& mask, bool record, bool has_bias, Bools needs) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<11>(gru_variant_backward(
      grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates, hidden_new,
      recurrent_inputs, ln_ih_weight, ln_hh_weight, normalized_ih, rstd_ih, normalized_hh,
      rstd_hh, recurrent_mask, zone_h, mask, record, has_bias, flags(needs)));
}

std::tuple<Tensor, Tensor, Tensor> rnn_variant_forward_op(
    const Tensor& x, const Tensor& h0, const Tensor& weight_ih, const Tensor& weight_hh,
    const OptionalTensor& bias, bool relu, const OptionalTensor& recurrent_mask,
    const OptionalTensor& zone_h, const OptionalTensor& mask) {
  RNNKIT_NO_AUTOCAST;
  Tensors results = rnn_variant_forward(x, h0, weight_ih, weight_hh, bias, relu, recurrent_mask,
                                        zone_h, mask);
  results[1] = unless_view_of(results[1], results[0]);  // hiddens[1:] without zoneout
  return as_tuple<3>(results);
}

auto rnn_variant_backward_op(
    const OptionalTensor& grad_output, const OptionalTensor& grad_h_n, const Tensor& x,
    const Tensor& weight_ih, const Tensor& weight_hh, const Tensor& hiddens,
    const OptionalTensor& new_hiddens, const OptionalTensor& recurrent_inputs,
    const OptionalTensor& recurrent_mask, const OptionalTensor& zone_h,
    const OptionalTensor& mask, bool relu, bool record, bool has_bias, Bools needs) {
  RNNKIT_NO_AUTOCAST;
  return as_tuple<6>(rnn_variant_backward(grad_output, grad_h_n, x, weight_ih, weight_hh,
                                          hiddens, or_steps_of(new_hiddens, hiddens),
                                          recurrent_inputs, recurrent_mask, zone_h, mask, relu,
                                          record, has_bias, flags(needs)));
}

bool with_mkl() {
#ifdef RNNKIT_WITH_MKL
  return true;
#else
  return false;
#endif
}

}  // namespace

TORCH_LIBRARY(rnnkit, m) {
  m.def(
      "lstm_forward(Tensor x, Tensor h0, Tensor c0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias, Tensor? weight_hr, Tensor? mask) "
      "-> (Tensor hiddens, Tensor cells, Tensor gates)");
  m.def(
      "lstm_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor? grad_c_n, Tensor x, "
      "Tensor weight_ih, Tensor weight_hh, Tensor? weight_hr, Tensor hiddens, Tensor cells, "
      "Tensor gates, Tensor? mask, bool record, bool has_bias, bool[] needs) "
      "-> (Tensor grad_x, Tensor grad_h0, Tensor grad_c0, Tensor grad_weight_ih, "
      "Tensor grad_weight_hh, Tensor grad_bias, Tensor grad_weight_hr, Tensor hidden_grads, "
      "Tensor cell_grads)");
  m.def(
      "gru_forward(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, Tensor? bias_ih, "
      "Tensor? bias_hh, Tensor? mask) -> (Tensor hiddens, Tensor gates, Tensor hidden_new)");
  m.def(
      "gru_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor x, Tensor weight_ih, "
      "Tensor weight_hh, Tensor hiddens, Tensor gates, Tensor hidden_new, Tensor? mask, "
      "bool record, bool has_bias, bool[] needs) "
      "-> (Tensor grad_x, Tensor grad_h0, Tensor grad_weight_ih, Tensor grad_weight_hh, "
      "Tensor grad_bias_ih, Tensor grad_bias_hh, Tensor hidden_grads)");
  m.def(
      "rnn_forward(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, Tensor? bias, "
      "bool relu, Tensor? mask) -> Tensor hiddens");
  m.def(
      "rnn_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor x, Tensor weight_ih, "
      "Tensor weight_hh, Tensor hiddens, Tensor? mask, bool relu, bool record, bool has_bias, "
      "bool[] needs) -> (Tensor grad_x, Tensor grad_h0, Tensor grad_weight_ih, "
      "Tensor grad_weight_hh, Tensor grad_bias, Tensor hidden_grads)");
  m.def(
      "lstm_variant_forward(Tensor x, Tensor h0, Tensor c0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias, Tensor? ln_ih_weight, Tensor? ln_ih_bias, Tensor? ln_hh_weight, "
      "Tensor? ln_hh_bias, Tensor? ln_cell_weight, Tensor? ln_cell_bias, Tensor? peephole, "
      "Tensor? recurrent_mask, Tensor? zone_h, Tensor? zone_c, bool coupled, Tensor? mask) "
      "-> (Tensor hiddens, Tensor cells, Tensor new_cells, Tensor gates, "
      "Tensor recurrent_inputs, Tensor normalized_ih, Tensor rstd_ih, Tensor normalized_hh, "
      "Tensor rstd_hh, Tensor normalized_cell, Tensor rstd_cell)");
  m.def(
      "lstm_variant_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor? grad_c_n, Tensor x, "
      "Tensor weight_ih, Tensor weight_hh, Tensor hiddens, Tensor cells, Tensor? new_cells, "
      "Tensor gates, Tensor? recurrent_inputs, Tensor? ln_ih_weight, Tensor? ln_hh_weight, "
      "Tensor? ln_cell_weight, Tensor? ln_cell_bias, Tensor? normalized_ih, Tensor? rstd_ih, "
      "Tensor? normalized_hh, Tensor? rstd_hh, Tensor? normalized_cell, Tensor? rstd_cell, "
      "Tensor? peephole, Tensor? recurrent_mask, Tensor? zone_h, Tensor? zone_c, bool coupled, "
      "Tensor? mask, bool record, bool has_bias, bool[] needs) "
      "-> (Tensor grad_x, Tensor grad_h0, Tensor grad_c0, Tensor grad_weight_ih, "
      "Tensor grad_weight_hh, Tensor grad_bias, Tensor grad_ln_ih_weight, "
      "Tensor grad_ln_ih_bias, Tensor grad_ln_hh_weight, Tensor grad_ln_hh_bias, "
      "Tensor grad_ln_cell_weight, Tensor grad_ln_cell_bias, Tensor grad_peephole, "
      "Tensor hidden_grads, Tensor cell_grads)");
  m.def(
      "gru_variant_forward(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias_ih, Tensor? bias_hh, Tensor? ln_ih_weight, Tensor? ln_ih_bias, "
      "Tensor? ln_hh_weight, Tensor? ln_hh_bias, Tensor? recurrent_mask, Tensor? zone_h, "
      "Tensor? mask) -> (Tensor hiddens, Tensor gates, Tensor hidden_new, "
      "Tensor recurrent_inputs, Tensor normalized_ih, Tensor rstd_ih, Tensor normalized_hh, "
      "Tensor rstd_hh)");
  m.def(
      "gru_variant_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor x, Tensor weight_ih, "
      "Tensor weight_hh, Tensor hiddens, Tensor gates, Tensor hidden_new, "
      "Tensor? recurrent_inputs, Tensor? ln_ih_weight, Tensor? ln_hh_weight, "
      "Tensor? normalized_ih, Tensor? rstd_ih, Tensor? normalized_hh, Tensor? rstd_hh, "
      "Tensor? recurrent_mask, Tensor? zone_h, Tensor? mask, bool record, bool has_bias, "
      "bool[] needs) -> (Tensor grad_x, Tensor grad_h0, Tensor grad_weight_ih, "
      "Tensor grad_weight_hh, Tensor grad_bias_ih, Tensor grad_bias_hh, "
      "Tensor grad_ln_ih_weight, Tensor grad_ln_ih_bias, Tensor grad_ln_hh_weight, "
      "Tensor grad_ln_hh_bias, Tensor hidden_grads)");
  m.def(
      "rnn_variant_forward(Tensor x, Tensor h0, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias, bool relu, Tensor? recurrent_mask, Tensor? zone_h, Tensor? mask) "
      "-> (Tensor hiddens, Tensor new_hiddens, Tensor recurrent_inputs)");
  m.def(
      "rnn_variant_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor x, Tensor weight_ih, "
      "Tensor weight_hh, Tensor hiddens, Tensor? new_hiddens, Tensor? recurrent_inputs, "
      "Tensor? recurrent_mask, Tensor? zone_h, Tensor? mask, bool relu, bool record, "
      "bool has_bias, bool[] needs) -> (Tensor grad_x, Tensor grad_h0, Tensor grad_weight_ih, "
      "Tensor grad_weight_hh, Tensor grad_bias, Tensor hidden_grads)");
  // whether the build found MKL's BLAS in torch (the benchmarks report it)
  m.def("with_mkl() -> bool", &with_mkl);
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_forward", &lstm_forward_op);
  m.impl("lstm_backward", &lstm_backward_op);
  m.impl("gru_forward", &gru_forward_op);
  m.impl("gru_backward", &gru_backward_op);
  m.impl("rnn_forward", &rnn_forward_op);
  m.impl("rnn_backward", &rnn_backward_op);
  m.impl("lstm_variant_forward", &lstm_variant_forward_op);
  m.impl("lstm_variant_backward", &lstm_variant_backward_op);
  m.impl("gru_variant_forward", &gru_variant_forward_op);
  m.impl("gru_variant_backward", &gru_variant_backward_op);
  m.impl("rnn_variant_forward", &rnn_variant_forward_op);
  m.impl("rnn_variant_backward", &rnn_variant_backward_op);
}

}  // namespace rnnkit
