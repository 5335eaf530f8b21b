"""The language model against a plain torch.nn twin, and its generation functions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.errors import UserError
from rnnkit.models.language_model import (
    LanguageModel,
    ModelConfig,
    beam_search,
    filter_logits,
    generate,
)


def twin(cell: str, tie: bool = False):
    config = ModelConfig(vocab_size=11, cell=cell, layers=2, hidden=8, embedding=8,
                         tie_weights=tie, backend="reference")
    torch.manual_seed(0)
    model = LanguageModel(config).double()
    reference = nn.ModuleDict({
        "embedding": nn.Embedding(11, 8),
        "rnn": {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](8, 8, num_layers=2),
        "decoder": nn.Linear(8, 11),
    }).double()
    reference.load_state_dict(model.state_dict())
    return model, reference


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_logits_and_gradients_match_torch_nn(cell):
    model, reference = twin(cell)
    tokens = torch.randint(11, (7, 3), generator=torch.Generator().manual_seed(1))
    logits, state = model(tokens)
    output, expected_state = reference["rnn"](reference["embedding"](tokens))
    expected = reference["decoder"](output)
    torch.testing.assert_close(logits, expected, atol=1e-10, rtol=0)
    logits.square().sum().backward()
    expected.square().sum().backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, reference.get_parameter(name).grad,
                                   atol=1e-9, rtol=0)


def test_tied_weights_share_one_matrix():
    model, _ = twin("lstm", tie=True)
    assert model.decoder.weight is model.embedding.weight
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for name, p in model.named_parameters() if name != "decoder.weight"
    )


def test_config_refusals_and_gate_init():
    with pytest.raises(UserError, match="bidirectional layers cannot be used in a language"):
        ModelConfig(vocab_size=5, bidirectional=True).validate()
    with pytest.raises(UserError, match="--tie-weights needs --embedding equal to --hidden"):
        ModelConfig(vocab_size=5, hidden=8, embedding=4, tie_weights=True).validate()
    with pytest.raises(UserError, match="--cell must be one of rnn, gru, lstm"):
        ModelConfig(vocab_size=5, cell="transformer").validate()
    with pytest.raises(UserError, match="need a gated cell"):
        ModelConfig(vocab_size=5, cell="rnn", forget_bias=1.0).validate()
    model = LanguageModel(ModelConfig(vocab_size=5, hidden=6, embedding=4, forget_bias=2.0))
    assert torch.equal(model.rnn.bias_ih_l1[6:12], torch.full((6,), 2.0))
    torch.manual_seed(0)
    chrono = LanguageModel(ModelConfig(vocab_size=5, hidden=6, embedding=4, init="chrono",
                                       chrono_max_len=50))
    forget = chrono.rnn.bias_ih_l0[6:12]
    assert torch.equal(chrono.rnn.bias_ih_l0[:6], -forget)
    assert forget.min() >= 0 and forget.max() <= torch.log(torch.tensor(49.0))


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    kept = filter_logits(logits, top_k=2).isfinite().tolist()
    assert kept == [True, True, False, False, False]
    # 0.5 + 0.2 = 0.7 < 0.75, so the token that crosses 0.75 (0.15) is kept too
    assert filter_logits(logits, top_p=0.75).isfinite().tolist() == [True, True, True, False,
                                                                     False]
    shuffled = logits[[3, 0, 4, 2, 1]]
    assert filter_logits(shuffled, top_p=0.6).isfinite().tolist() == [False, True, False, False,
                                                                      True]


def test_greedy_generation_and_beam_of_one_agree():
    model, _ = twin("gru")
    model.float()
    greedy = list(generate(model, [1, 2, 3], 12, greedy=True))
    tokens, score = beam_search(model, [1, 2, 3], 12, width=1)
    assert tokens == greedy
    # the score is the log-probability of the sequence under the model
    full = torch.tensor([1, 2, 3] + tokens).unsqueeze(1)
    with torch.no_grad():
        log_probs = model(full)[0][2:-1, 0].log_softmax(-1)
    assert score == pytest.approx(float(log_probs.gather(1, full[3:]).sum()), abs=1e-4)
    wider, wider_score = beam_search(model, [1, 2, 3], 12, width=4)
    assert len(wider) == 12 and wider_score >= score - 1e-5


def test_seeded_sampling_is_repeatable_and_follows_temperature():
    model, _ = twin("lstm")
    model.float()
    first = list(generate(model, [0], 20, generator=torch.Generator().manual_seed(3)))
    second = list(generate(model, [0], 20, generator=torch.Generator().manual_seed(3)))
    assert first == second
    cold = list(generate(model, [0], 20, temperature=1e-4,
                         generator=torch.Generator().manual_seed(3)))
    assert cold == list(generate(model, [0], 20, greedy=True))
