"""Greff et al.'s LSTM variants as plain data: one row of flags per name (no torch here).

Greff, Srivastava, Koutnik, Steunebrink, Schmidhuber, *LSTM: A Search Space Odyssey*
(2015) compare a vanilla LSTM **with peepholes** against eight variants, each changing
one thing. Those nine rows have ``greff=True``. Only one of them, NP (no peepholes), is
what ``torch.nn.LSTM`` computes: ``lstm-np`` is ``torch.nn.LSTM`` itself. The rows named
``*-np`` are not Greff variants: they combine a variant with NP, so that it can run on
the native kernel (cuDNN on a GPU) with weights built from free parameters on each
forward; the fused recurrence (``fused_lstm.py``) runs the others.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class VariantSpec:
    name: str                          # short name; the registry calls it lstm-<name>
    doc: str                           # one line for --help and the registry
    input_gate: bool = True            # False: i = 1 (NIG)
    forget_gate: bool = True           # False: f = 1 (NFG)
    output_gate: bool = True           # False: o = 1 (NOG)
    input_activation: bool = True      # False: z = identity instead of tanh (NIAF)
    output_activation: bool = True     # False: h = c * o, no tanh (NOAF)
    peepholes: bool = True             # False: gates do not see the cell state (NP)
    coupled: bool = False              # f = 1 - i, the forget gate has no weights (CIFG)
    full_gate_recurrence: bool = False  # gates also see all gates' previous activations (FGR)
    native: bool = False               # runs on torch.nn.LSTM's kernel
    greff: bool = True                 # one of Greff et al.'s nine exactly (vanilla + eight variants)

    def __post_init__(self):
        if self.coupled and not (self.input_gate and self.forget_gate):
            raise ValueError(f"{self.name}: coupled=True needs input_gate and forget_gate, "
                             f"got input_gate={self.input_gate}, forget_gate={self.forget_gate}")
        if self.full_gate_recurrence and not self.gates:
            raise ValueError(f"{self.name}: full_gate_recurrence=True needs at least one gate with weights")
        if self.native:
            for flag in ("input_activation", "output_activation"):
                if not getattr(self, flag):
                    raise ValueError(f"{self.name}: native=True needs {flag}=True (torch.nn.LSTM has tanh)")
            if self.peepholes or self.full_gate_recurrence:
                raise ValueError(f"{self.name}: native=True needs peepholes=False and full_gate_recurrence=False, "
                                 f"got {self.peepholes}, {self.full_gate_recurrence}")

    @property
    def gates(self) -> tuple[str, ...]:
        """The gates with weights of their own, in order: a subset of ("i", "f", "o")."""
        own = {"i": self.input_gate, "f": self.forget_gate and not self.coupled, "o": self.output_gate}
        return tuple(g for g, present in own.items() if present)

    @property
    def blocks(self) -> tuple[str, ...]:
        """Column blocks of the fused cell's weights: the block input "z", then its gates."""
        return ("z",) + self.gates

    def flags(self) -> dict[str, bool]:
        """The flags that differ from the vanilla LSTM with peepholes."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.type == "bool" and getattr(self, f.name) != f.default}


SPECS: tuple[VariantSpec, ...] = (
    VariantSpec("vanilla", "LSTM with peepholes (Greff et al.'s vanilla)"),
    VariantSpec("nig", "no input gate (i = 1)", input_gate=False),
    VariantSpec("nfg", "no forget gate (f = 1)", forget_gate=False),
    VariantSpec("nog", "no output gate (o = 1)", output_gate=False),
    VariantSpec("niaf", "no input activation function", input_activation=False),
    VariantSpec("noaf", "no output activation function", output_activation=False),
    VariantSpec("np", "no peepholes: torch.nn.LSTM itself (cuDNN on GPU)", peepholes=False, native=True),
    VariantSpec("cifg", "coupled input and forget gate (f = 1 - i)", coupled=True),
    VariantSpec("fgr", "full gate recurrence", full_gate_recurrence=True),
    VariantSpec("cifg-np", "CIFG without peepholes, on torch.nn.LSTM's kernel (not a Greff variant)",
                coupled=True, peepholes=False, native=True, greff=False),
    VariantSpec("nig-np", "NIG without peepholes, on torch.nn.LSTM's kernel (not a Greff variant)",
                input_gate=False, peepholes=False, native=True, greff=False),
    VariantSpec("nfg-np", "NFG without peepholes, on torch.nn.LSTM's kernel (not a Greff variant)",
                forget_gate=False, peepholes=False, native=True, greff=False),
    VariantSpec("nog-np", "NOG without peepholes, on torch.nn.LSTM's kernel (not a Greff variant)",
                output_gate=False, peepholes=False, native=True, greff=False),
)
VARIANT_SPECS: dict[str, VariantSpec] = {s.name: s for s in SPECS}


def get_spec(variant: str) -> VariantSpec:
    """The row of ``variant``; an unknown name is a ValueError that lists the valid ones."""
    spec = VARIANT_SPECS.get(variant)
    if spec is None:
        raise ValueError(f"variant must be one of {', '.join(VARIANT_SPECS)}, got {variant!r}")
    return spec
