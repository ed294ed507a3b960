"""The distribution head of a recurrent network and its loss, the negative log-likelihood.

The head maps the last hidden state to the parameters of tomorrow's distribution, for
every step of the horizon, in the *scaled* target's units (the network never sees raw
returns): ``[..., D] -> [..., H, P]`` with

- mean: a linear output, unconstrained (the point forecast);
- sd: ``softplus(raw) + SD_FLOOR``, the standard deviation, never zero;
- df (Student t only): ``DF_FLOOR + softplus(raw)``, kept above 2 so that the variance exists
  (the standard deviation is a parameter of the head, so the t's scale is
  ``sd * sqrt((df - 2) / df)``).

Biases start at sd 1 (the scaled target's own standard deviation) and df 5, so training
starts from a sensible distribution rather than from softplus(0).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..stats.distributions import PARAMETERS  # P: mean, sd (, df)

SD_FLOOR = 1e-3                              # scaled units: a thousandth of the target's training sd
DF_FLOOR = 2.1                               # sd / scale = sqrt(df / (df - 2)) stays below 4.6
INITIAL_SD, INITIAL_DF = 1.0, 5.0


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class DistributionHead(nn.Module):
    """``[..., D] -> [..., H, P]``: (mean, sd) or (mean, sd, df) per step."""

    def __init__(self, hidden_size: int, horizon: int, family: str):
        super().__init__()
        if family not in PARAMETERS:
            raise ValueError(f"family must be one of {', '.join(PARAMETERS)}, got {family!r}")
        self.family, self.horizon, self.params = family, horizon, PARAMETERS[family]
        self.linear = nn.Linear(hidden_size, horizon * self.params)
        with torch.no_grad():
            bias = self.linear.bias.view(horizon, self.params)
            bias[:, 1] = _inverse_softplus(INITIAL_SD - SD_FLOOR)
            if self.params == 3:
                bias[:, 2] = _inverse_softplus(INITIAL_DF - DF_FLOOR)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.outputs(self.linear(h))                                # [..., D] -> [..., H, P]

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """The linear layer's output ``[..., H * P]`` -> ``[..., H, P]`` (a population's members share it)."""
        raw = raw.unflatten(-1, (self.horizon, self.params))
        mean = raw[..., 0]
        sd = F.softplus(raw[..., 1]) + SD_FLOOR
        parts = [mean, sd] + ([F.softplus(raw[..., 2]) + DF_FLOOR] if self.params == 3 else [])
        return torch.stack(parts, dim=-1)                                  # [..., H, P]


class NegativeLogLikelihood(nn.Module):
    """Mean negative log-likelihood of ``y [..., H]`` under ``params [..., H, P]`` (the head's output)."""

    def __init__(self, family: str):
        super().__init__()
        self.family = family

    def forward(self, params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.elementwise(params, y).mean()

    def elementwise(self, params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of every value of ``y [..., H]``, not averaged."""
        mean, sd = params[..., 0], params[..., 1]
        if self.family == "normal":
            z = (y - mean) / sd
            nll = 0.5 * z ** 2 + torch.log(sd) + 0.5 * math.log(2 * math.pi)
        else:
            df = params[..., 2]
            scale = sd * torch.sqrt((df - 2) / df)
            z = (y - mean) / scale
            nll = (torch.lgamma(df / 2) - torch.lgamma((df + 1) / 2) + 0.5 * torch.log(math.pi * df)
                   + torch.log(scale) + (df + 1) / 2 * torch.log1p(z ** 2 / df))
        return nll


def combine_members(outputs: torch.Tensor) -> torch.Tensor:
    """A seed ensemble's distribution from its members' ``[S, B, H, P]``: the same family with the members'
    mixture's mean and variance (mean of the means; mean of the variances plus the variance of the means)
    and, for the Student t, the mean of the degrees of freedom. ``[S, B, H, P] -> [B, H, P]``."""
    mean = outputs[..., 0].mean(dim=0)                                          # [B, H]
    var = (outputs[..., 1] ** 2).mean(dim=0) + outputs[..., 0].var(dim=0, unbiased=False)
    parts = [mean, torch.sqrt(var)] + ([outputs[..., 2].mean(dim=0)] if outputs.shape[-1] == 3 else [])
    return torch.stack(parts, dim=-1)
