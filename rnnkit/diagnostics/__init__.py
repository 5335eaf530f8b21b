"""Looking inside trained and untrained recurrent networks: gradient flow over time, gate
traces and statistics on text, pictures, and the self-contained HTML report."""

from rnnkit.diagnostics.gradflow import GradientFlow, from_internals, measure

__all__ = ["GradientFlow", "from_internals", "measure"]
