"""``rnnkit demo``: a short first look — an LSTM learns to remember, and its gates show how.

Delayed recall: a class token at the start, distractors after it, the class to be named at
the end. The LSTM must hold one token in its cell state over every distractor.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from rnnkit import LSTM
from rnnkit.errors import UserError


class RecallModel(nn.Module):
    def __init__(self, classes: int, distractors: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(classes + distractors, 16)
        self.lstm = LSTM(16, hidden)
        self.head = nn.Linear(hidden, classes)
        with torch.no_grad():  # start with the forget gate mostly open (Gers et al. 2000)
            self.lstm.bias_hh_l0[hidden : 2 * hidden].fill_(2.0)

    def forward(self, tokens: torch.Tensor, return_internals: bool = False):
        output, _, *internals = self.lstm(self.embedding(tokens), return_internals=return_internals)
        return self.head(output[-1]), internals[0] if internals else None


def recall_batch(batch: int, steps: int, classes: int, distractors: int, generator):
    """Tokens ``(T, N)``: the class first, then T-1 distractors; targets ``(N,)``."""
    targets = torch.randint(classes, (batch,), generator=generator)
    noise = torch.randint(classes, classes + distractors, (steps - 1, batch), generator=generator)
    return torch.cat([targets.unsqueeze(0), noise]), targets


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="train an LSTM to remember, and show its gates")
    parser.add_argument("--T", type=int, default=30, help="sequence length (default 30)")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=run)


def run(args) -> int:
    if args.T < 2:
        raise UserError(f"--T must be at least 2 (a token and something after it), got {args.T}")
    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    classes, distractors = 4, 4
    model = RecallModel(classes, distractors, hidden=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    test_tokens, test_targets = recall_batch(512, args.T, classes, distractors, generator)
    print(f"Delayed recall: name the token seen {args.T - 1} steps ago "
          f"({classes} classes, chance {1 / classes:.2f}). Training an rnnkit LSTM…")
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        tokens, targets = recall_batch(64, args.T, classes, distractors, generator)
        logits, _ = model(tokens)
        loss = nn.functional.cross_entropy(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                accuracy = (model(test_tokens)[0].argmax(1) == test_targets).float().mean()
            print(f"  step {step:5d}  loss {loss.item():.3f}  test accuracy {accuracy:.3f}")
    with torch.no_grad():
        _, internals = model(test_tokens, return_internals=True)
    gates = internals.last.gates
    print(f"Trained in {time.perf_counter() - started:.1f} s. What the gates did (mean over "
          "the test set and units):")
    print("   step   input  forget  output")
    for t in sorted({0, 1, args.T // 2, args.T - 1}):
        print(f"  {t:5d}  {gates['input'][t].mean():.3f}  {gates['forget'][t].mean():.3f}"
              f"   {gates['output'][t].mean():.3f}")
    if accuracy > 0.9:
        print("It remembers: the class is written into the cell state when it arrives (input "
              "gate at step 0) and the forget gate keeps it over the distractors.")
    else:
        print("It has not learnt to remember yet: try more --steps.")
    return 0
