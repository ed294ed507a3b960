"""Many networks trained as one: the population trainer.

Members are networks of one cell and shape (folds, seeds, restarts of one model; trials of a
sweep) that would each train alone with the one recipe (``TrainingModule``). Here they train as
one ``PopulationNet``, and each member keeps everything it has alone:

- its initialisation (built by its own forecaster, seeded as alone: ``NetworkForecaster.prepare``),
- its windows and shuffle (``PopulationBatches``), its own scaler,
- its Adam state, learning rate and weight decay, its gradient-norm clipping (``MemberAdam``,
  ``clip_members``: per row of the flat parameters),
- its early stopping, best epoch and best weights, its restarts (``fit_networks``),
- its loss curve (its forecaster's ``on_epoch`` hook).

A member with fewer batches than the others idles at the end of an epoch: no gradient, no
optimizer step, no change of its Adam moments. A member that stopped leaves the batch. A
member whose loss stops being a number fails the command, naming its model, fold and seed
(``convergence``), as a network alone does. Its forecasts equal those of the network trained
alone up to float32 rounding (the tests hold them within 1e-4 after 1 and 5 epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import torch

from ..data.datamodule import fit_scaler
from ..data.windows import FeatureSeries, Split
from ..models.distribution_head import NegativeLogLikelihood
from ..models.population import PopulationNet, shape_key
from ..errors import ForecastError
from .convergence import Diverged
from .forecasters import Attempt, NetworkForecaster, SeedEnsemble
from .population_data import MemberData, PopulationBatches, Source

BETAS, EPS = (0.9, 0.999), 1e-8     # torch.optim.Adam's defaults, as the one-network recipe uses
AUTO_GPU = 256                      # --population auto on a CUDA device: members per population
# --population auto on a CPU: populations of up to AUTO_CPU_MEMBERS networks where they were measured to pay
# (`python benchmarks/population.py --cells rnn,gru,lstm,lstm-vanilla --hidden-sizes 16,32,64`, 2 cores, 12
# members; and a sweep's trials): up to this hidden size by how the cell runs alone. Larger networks are faster
# one at a time on a CPU, and torch.nn.LSTM's CPU kernel is as fast or faster from 32 units on (12 networks of 16
# units, batch 64: 1.5x; 32 units: 1.0x; 3 of 16 units, 2 layers, batch 256: 0.68x), so it trains alone there.
AUTO_CPU_MEMBERS = 12
AUTO_CPU_HIDDEN = {"rnn": 64, "gru": 32, "fused": 32, "torch-lstm": 0}


def cell_engine(cell: str) -> str:
    """How a registry cell runs alone: rnn, gru, torch-lstm (``torch.nn.LSTM``'s kernel: lstm, lstm-np and the
    -np variants) or fused (the variants with peepholes, on ``variants/fused.py``)."""
    from ..models.variants.specs import get_spec

    if cell in ("rnn", "gru"):
        return cell
    if cell == "lstm" or get_spec(cell[len("lstm-"):]).native:
        return "torch-lstm"
    return "fused"


def population_device(train) -> torch.device | None:
    """Where populations train under ``train`` (``TrainSettings``): a CPU or a CUDA device; None where they do
    not (another accelerator, several devices, a strategy, truncated BPTT: one network at a time, by Lightning)."""
    if train.tbptt_k1 or train.devices.strip() != "1" or train.strategy != "auto":
        return None
    if train.accelerator == "cpu":
        return torch.device("cpu")
    if train.accelerator in ("gpu", "cuda") or (train.accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ForecastError(f"--accelerator {train.accelerator}: no CUDA GPU is available here; use "
                                f"--accelerator cpu (or auto)")
        return torch.device("cuda")
    return torch.device("cpu") if train.accelerator == "auto" else None


def population_size(entry, network, train) -> int:
    """Networks of ``entry`` (with ``network``'s settings) trained at a time under ``train``: 1 is one at a time
    (as alone, by Lightning); a user's own cell always trains alone."""
    if entry.kind != "network" or entry.custom:
        return 1
    device = population_device(train)
    if device is None:
        return 1
    if train.population != "auto":
        return int(train.population)
    if device.type == "cuda":
        return AUTO_GPU
    return AUTO_CPU_MEMBERS if network.hidden_size <= AUTO_CPU_HIDDEN[cell_engine(entry.cell)] else 1


@dataclass
class Member:
    """One network to train: its forecaster (settings, seed, hooks), its data and which training it is."""

    forecaster: NetworkForecaster
    series: FeatureSeries
    split: Split
    restart: int = 0

    @property
    def label(self) -> str:
        f = self.forecaster
        return f"{f.entry.name} diverged on fold {f.ctx.fold}, seed {f.train.seed}"

    @property
    def sources(self) -> list[tuple]:
        """``(series, split, code)`` of what it trains on: its one series, or a global network's every series."""
        return getattr(self.forecaster, "sources", None) or [(self.series, self.split, 0)]


class MemberAdam:
    """Adam with L2 weight decay (``torch.optim.Adam``'s update) for every row of ``flat [M, N]`` at once,
    each row with its own learning rate, weight decay and step count; ``step(m)`` updates the first ``m``."""

    def __init__(self, flat: torch.Tensor, lr: list[float], weight_decay: list[float]):
        self.flat = flat
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        self.lr = torch.tensor(lr, dtype=torch.float64, device=flat.device)
        self.wd = torch.tensor(weight_decay, dtype=flat.dtype, device=flat.device)
        self.steps = torch.zeros(len(lr), dtype=torch.float64, device=flat.device)

    @torch.no_grad()
    def step(self, m: int) -> None:
        p, g = self.flat.data[:m], self.flat.grad[:m]
        if bool((self.wd[:m] > 0).any()):
            g = g.addcmul(p, self.wd[:m, None])
        b1, b2 = BETAS
        self.exp_avg[:m].lerp_(g, 1 - b1)
        self.exp_avg_sq[:m].mul_(b2).addcmul_(g, g, value=1 - b2)
        self.steps[:m] += 1
        step_size = (self.lr[:m] / (1 - b1 ** self.steps[:m])).to(p.dtype)[:, None]
        bias2_sqrt = torch.sqrt(1 - b2 ** self.steps[:m]).to(p.dtype)[:, None]
        denom = (self.exp_avg_sq[:m].sqrt() / bias2_sqrt).add_(EPS)
        p.sub_(step_size * self.exp_avg[:m] / denom)

    def keep(self, index: torch.Tensor, flat: torch.Tensor) -> None:
        """Only the rows at ``index`` go on (``flat``: the population's new parameters)."""
        self.flat = flat
        self.exp_avg, self.exp_avg_sq = self.exp_avg[index], self.exp_avg_sq[index]
        self.lr, self.wd, self.steps = self.lr[index], self.wd[index], self.steps[index]


@torch.no_grad()
def clip_members(grad: torch.Tensor, max_norm: torch.Tensor) -> None:
    """Each row's gradient norm clipped to its own ``max_norm`` (0: no clipping), as ``clip_grad_norm_``."""
    coef = (max_norm / (grad.norm(dim=1) + 1e-6)).clamp(max=1.0)
    grad.mul_(torch.where(max_norm > 0, coef, torch.ones_like(coef))[:, None])


def row_losses(out: torch.Tensor, y: torch.Tensor, family: str | None) -> torch.Tensor:
    """``[m, N]``: each window's loss, as the network's own loss (MSE, or NLL with a distribution head)."""
    if family is None:
        return ((out - y) ** 2).mean(-1)
    return NegativeLogLikelihood(family).elementwise(out, y).mean(-1)


class PopulationTraining:
    """One population's training loop over epochs (``run``); ``attempts()`` afterwards."""

    def __init__(self, members: list[Member], device, progress: bool = False):
        first = members[0].forecaster
        self.ctx, t = first.ctx, first.train
        self.batch_size, self.max_epochs, self.patience = t.batch_size, t.max_epochs, t.patience
        self.family, self.device, self.progress = first.network.distribution, device, progress
        modules = [m.forecaster.prepare(m.restart) for m in members]       # each initialised as alone
        data = [MemberData(tuple(Source(series, split, fit_scaler(series, split, self.ctx.lookback, self.ctx.horizon),
                                        code) for series, split, code in m.sources),
                           m.forecaster.seed_for(m.restart)) for m in members]
        # A member of one series keeps its scaler; a global network one per series.
        scalers = [d.sources[0].scaler if len(d.sources) == 1 else [s.scaler for s in d.sources] for d in data]
        self.data = PopulationBatches(data, self.ctx.lookback, self.ctx.horizon, self.batch_size, device,
                                      getattr(first, "embed", 0))
        # Most batches first: the members with a batch at step k are then always the first ones.
        self.order = sorted(range(len(members)), key=lambda i: -self.data.batches[i])
        self.members, self.modules, self.scalers = members, modules, scalers
        self.net = PopulationNet([modules[i].net for i in self.order]).to(device)
        trains = [members[i].forecaster.train for i in self.order]
        self.adam = MemberAdam(self.net.flat, [t.learning_rate for t in trains], [t.weight_decay for t in trains])
        self.clip = torch.tensor([t.gradient_clip for t in trains], dtype=self.net.flat.dtype, device=device)
        self.alive = list(self.order)                                        # member indices, in the net's order
        self.history = [[] for _ in members]
        self.best = [math.inf] * len(members)
        self.best_epoch, self.best_row = [-1] * len(members), [None] * len(members)
        self.wait = [0] * len(members)

    def run(self) -> None:
        bar = self._bar()
        for epoch in range(self.max_epochs):
            train = self._train_epoch()
            val = self._validate()
            self._end_epoch(epoch, train, val)
            if bar is not None:
                bar.set_postfix({"training": len(self.alive)})
                bar.update(1)
            if not self.alive:
                break
        if bar is not None:
            bar.close()

    def _bar(self):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        name = self.members[0].forecaster.entry.name
        return tqdm(total=self.max_epochs, desc=f"training {name} ({len(self.members)} networks)", unit="epoch",
                    disable=None, dynamic_ncols=True, leave=True)

    def _train_epoch(self) -> torch.Tensor:
        """One epoch of every alive member; each one's mean training loss ``[a]``."""
        self.net.train()
        alive, data = self.alive, self.data
        order = data.epoch(alive)
        sums = torch.zeros(len(alive), device=self.device)
        for step in range(max(data.batches[i] for i in alive)):
            m = data.active(alive, step)
            x, y, valid = data.batch(order, step, m)
            losses = row_losses(self.net(x, m), y, self.family) * valid          # [m, B]
            per_member = losses.sum(1) / valid.sum(1)
            self.net.flat.grad = None
            per_member.sum().backward()
            clip_members(self.net.flat.grad[:m], self.clip[:m])
            self.adam.step(m)
            sums[:m] += losses.detach().sum(1)
        return sums / data.train_counts(alive)

    @torch.no_grad()
    def _validate(self) -> torch.Tensor:
        self.net.eval()
        sums = torch.zeros(len(self.alive), device=self.device)
        for x, y, valid in self.data.validation(self.alive):
            sums += (row_losses(self.net(x), y, self.family) * valid).sum(1)
        return sums / self.data.val_counts(self.alive)

    def _end_epoch(self, epoch: int, train: torch.Tensor, val: torch.Tensor) -> None:
        """Per member, as ``EpochRecorder`` and ``EarlyStopping`` do alone: the losses, the best weights, the stop."""
        keep = []
        for row, (i, t_loss, v_loss) in enumerate(zip(self.alive, train.tolist(), val.tolist())):
            member = self.members[i]
            for stage, value in (("train", t_loss), ("val", v_loss)):
                if not math.isfinite(value):
                    raise Diverged(f"{member.label}: the {stage} loss is {value} at epoch {epoch + 1}; lower "
                                   f"--learning-rate or keep --gradient-clip on")
            entry = {"epoch": epoch, "seed": member.forecaster.train.seed}
            if member.restart:
                entry["restart"] = member.restart
            entry |= {"train_loss": t_loss, "val_loss": v_loss}
            self.history[i].append(entry)
            if member.forecaster.on_epoch is not None:
                member.forecaster.on_epoch(entry)
            if v_loss < self.best[i]:
                self.best[i], self.best_epoch[i], self.wait[i] = v_loss, epoch, 0
                self.best_row[i] = self.net.flat[row].detach().clone()
            else:
                self.wait[i] += 1
            if self.wait[i] < self.patience:
                keep.append(row)
        if len(keep) < len(self.alive):
            self._keep(keep)

    def _keep(self, rows: list[int]) -> None:
        """Members that stopped leave the batch (and their rows of the parameters and of Adam's state)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        for row, i in enumerate(self.alive):
            if row not in rows:
                self.net.write_back(row, self.modules[i].net, self.best_row[i])
        self.net.keep(index)
        self.adam.keep(index, self.net.flat)
        self.clip = self.clip[index]
        self.alive = [self.alive[r] for r in rows]

    def attempts(self) -> list[Attempt]:
        """Every member's training, in the order the members were given (best weights in its own network)."""
        for row, i in enumerate(self.alive):                  # still alive at the epoch cap
            self.net.write_back(row, self.modules[i].net, self.best_row[i])
        return [Attempt(self.modules[i], self.scalers[i], self.history[i], self.best[i], self.best_epoch[i])
                for i in range(len(self.members))]


def train_population(members: list[Member], device, progress: bool = False) -> list[Attempt]:
    """Train ``members`` (one cell and shape) as one population; one ``Attempt`` each, in their order."""
    training = PopulationTraining(members, device, progress)
    training.run()
    return training.attempts()


def population_key(forecaster: NetworkForecaster) -> tuple:
    """What the members of one population must share."""
    t, c = forecaster.train, forecaster.ctx
    return (shape_key(forecaster.shape), c.lookback, c.horizon, c.target, t.batch_size, t.max_epochs, t.patience)


def fit_networks(members: list[Member], size: int, device, progress: bool = False) -> None:
    """Fit every member's forecaster as ``NetworkForecaster.fit`` does, in populations of at most ``size``
    members of one key: restarts included (members that stopped short train again together, each with its
    restart's seed), each forecaster keeping its best attempt."""
    best: dict[int, Attempt] = {}
    pending, restart = list(range(len(members))), 0
    while pending:
        groups: dict[tuple, list[int]] = {}
        for i in pending:
            groups.setdefault(population_key(members[i].forecaster), []).append(i)
        for indices in groups.values():
            for start in range(0, len(indices), size):
                chunk = indices[start:start + size]
                runs = [Member(members[i].forecaster, members[i].series, members[i].split, restart) for i in chunk]
                for i, attempt in zip(chunk, train_population(runs, device, progress)):
                    best[i] = Attempt.better(best.get(i), attempt)
        following = []
        for i in pending:
            m = members[i]
            if m.forecaster.wants_restart(best[i], restart, m.series, m.split):
                following.append(i)
            else:
                m.forecaster.adopt(best[i], restart, m.series, m.split)
        pending, restart = following, restart + 1


def fit_forecasters(jobs: list[tuple], size: int, train, progress: bool = False) -> None:
    """Fit every ``(forecaster, series, split)``: their networks (each seed of an ensemble one) as populations of
    at most ``size`` (``population_size``), or each forecaster on its own where ``size`` is 1, where it is not a
    network, or where there is a single network (a population of one is a network alone)."""
    members = [Member(net, series, split) for model, series, split in jobs
               for net in (model.members if isinstance(model, SeedEnsemble) else [model])
               if isinstance(net, NetworkForecaster)]
    if size <= 1 or len(members) <= 1 or len(members) < len(jobs):
        for model, series, split in jobs:
            model.fit(series, split)
        return
    fit_networks(members, size, population_device(train), progress)
    for model, _, _ in jobs:
        if isinstance(model, SeedEnsemble):
            model.assemble()
