// Python bindings of the fused kernels; the autograd.Functions around them live in
// rnnkit/kernels/functions.py. Shapes: see common.h.
#include <torch/extension.h>

#include "common.h"
#include "variants.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "rnnkit fused LSTM/GRU/RNN kernels (forward and backward through time)";
  module.def("lstm_forward", &rnnkit::lstm_forward);
  module.def("lstm_backward", &rnnkit::lstm_backward);
  module.def("gru_forward", &rnnkit::gru_forward);
  module.def("gru_backward", &rnnkit::gru_backward);
  module.def("rnn_forward", &rnnkit::rnn_forward);
  module.def("rnn_backward", &rnnkit::rnn_backward);
  module.def("lstm_variant_forward", &rnnkit::lstm_variant_forward);
  module.def("lstm_variant_backward", &rnnkit::lstm_variant_backward);
  module.def("gru_variant_forward", &rnnkit::gru_variant_forward);
  module.def("gru_variant_backward", &rnnkit::gru_variant_backward);
  module.def("rnn_variant_forward", &rnnkit::rnn_variant_forward);
  module.def("rnn_variant_backward", &rnnkit::rnn_variant_backward);
#ifdef RNNKIT_WITH_MKL
  module.attr("with_mkl") = true;
#else
  module.attr("with_mkl") = false;
#endif
}
