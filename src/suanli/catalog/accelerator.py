"""Accelerator models and the catalog that holds them.

The normalized compute unit
---------------------------
Capacity and usage are compared across chip types in **NU** (normalized units): one NU is one
dense 16-bit tensor PFLOP/s of peak compute (``peak_tflops / 1000``), using the catalog's figure
or, where a node declares one, its measured calibration. Usage is counted in NU-hours (one NU
busy for one hour). Where a job's measured speed on each model is known (a throughput matrix),
the scheduler uses that speed instead of the peak ratio to pick a model; the NU stays the unit of
entitlement and accounting. See docs/policies.md.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from suanli.errors import NotFoundError, Problem, ValidationError
from suanli.model.ids import ModelId

STACKS: frozenset[str] = frozenset(
    {"cuda", "npu", "mlu", "dcu", "xpu", "musa", "maca", "corex", "gcu", "supa", "ppu"}
)
PRECISIONS: frozenset[str] = frozenset({"bf16", "fp16", "fp32"})
BASES: frozenset[str] = frozenset({"measured", "datasheet", "vendor-claim", "estimate", ""})


@dataclass(frozen=True, slots=True)
class AcceleratorModel:
    """One accelerator model: facts from public sources, or empty where none is trustworthy.

    ``id`` is what job specs and alliance files name (``H800-80GB``); ``family`` groups variants
    a person may name at once (``V100`` means both V100 memory sizes). ``alloc_unit`` is the
    number of logical devices that must be allocated together (2 for an Ascend 910C, whose two
    dies form one module).
    """

    id: ModelId
    family: str
    vendor: str
    name: str
    memory_gb: float | None
    memory_bw_gbs: float | None
    peak_tflops: float | None
    peak_precision: str
    peak_basis: str
    stack: str
    resource_name: str
    alloc_unit: int
    source: str

    @property
    def nu_per_device(self) -> float | None:
        """Normalized units (dense 16-bit PFLOP/s) one device offers, or None if unknown."""
        return None if self.peak_tflops is None else self.peak_tflops / 1000.0

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "family": self.family,
            "vendor": self.vendor,
            "model": self.name,
            "memory_gb": self.memory_gb,
            "memory_bw_gbs": self.memory_bw_gbs,
            "peak_tflops": self.peak_tflops,
            "peak_precision": self.peak_precision,
            "peak_basis": self.peak_basis or None,
            "nu_per_device": self.nu_per_device,
            "stack": self.stack,
            "resource_name": self.resource_name or None,
            "alloc_unit": self.alloc_unit,
            "source": self.source,
        }


class Catalog:
    """An immutable set of accelerator models with lookups by id, family and stack."""

    def __init__(self, models: Iterable[AcceleratorModel]) -> None:
        self._models: dict[ModelId, AcceleratorModel] = {}
        for m in models:
            if m.id in self._models:
                raise ValidationError([Problem(f"catalog.{m.id}", "duplicate model id")])
            self._models[m.id] = m
        self._by_name: dict[str, list[ModelId]] = {}
        for m in self._models.values():
            for key in {m.id.lower(), m.family.lower()}:
                self._by_name.setdefault(key, []).append(m.id)

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[AcceleratorModel]:
        return iter(self._models.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    @property
    def models(self) -> Mapping[ModelId, AcceleratorModel]:
        return self._models

    def get(self, model_id: str) -> AcceleratorModel:
        try:
            return self._models[ModelId(model_id)]
        except KeyError:
            raise NotFoundError(f"unknown accelerator model {model_id!r}") from None

    def extended(self, models: Iterable[AcceleratorModel]) -> Catalog:
        """This catalog plus ``models`` (a scenario's undisclosed models); ids must be new."""
        return Catalog([*self._models.values(), *models])

    def resolve(self, name: str) -> tuple[ModelId, ...]:
        """Every model whose id or family equals ``name`` (case-insensitive), in catalog order.

        An empty tuple means the name is unknown.
        """
        return tuple(self._by_name.get(name.lower(), ()))

    def names(self) -> list[str]:
        """Every name :meth:`resolve` knows: model ids and families (as the catalog spells them)."""
        return sorted(
            {m.id for m in self._models.values()} | {m.family for m in self._models.values()}
        )

    def with_stack(self, stack: str) -> tuple[ModelId, ...]:
        return tuple(m.id for m in self._models.values() if m.stack == stack)

    @property
    def stacks(self) -> frozenset[str]:
        return frozenset(m.stack for m in self._models.values())

    @property
    def vendors(self) -> frozenset[str]:
        return frozenset(m.vendor for m in self._models.values())


def _opt_float(
    row: Mapping[str, str], key: str, line: int, problems: list[Problem]
) -> float | None:
    raw = row[key].strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        problems.append(Problem(f"line {line}.{key}", f"not a number: {raw!r}"))
        return None
    if value <= 0:
        problems.append(Problem(f"line {line}.{key}", f"must be positive, got {value}"))
    return value


def parse_catalog(text: str, source: str = "accelerators.csv") -> Catalog:
    """Parse a catalog CSV. Every bad cell is reported with its line and column."""
    problems: list[Problem] = []
    models: list[AcceleratorModel] = []
    reader = csv.DictReader(text.splitlines())
    for line, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            problems.append(Problem(f"line {line}", "wrong number of columns"))
            continue
        stack = row["stack"].strip()
        if stack not in STACKS:
            problems.append(Problem(f"line {line}.stack", f"unknown stack {stack!r}"))
        precision = row["peak_precision"].strip()
        if precision not in PRECISIONS:
            problems.append(Problem(f"line {line}.peak_precision", f"unknown {precision!r}"))
        basis = row["peak_basis"].strip()
        if basis not in BASES:
            problems.append(Problem(f"line {line}.peak_basis", f"unknown {basis!r}"))
        peak = _opt_float(row, "peak_tflops", line, problems)
        if (peak is None) != (basis == ""):
            problems.append(
                Problem(f"line {line}.peak_basis", "set exactly when peak_tflops is set")
            )
        if not row["source"].strip():
            problems.append(Problem(f"line {line}.source", "every row needs a source"))
        try:
            unit = int(row["alloc_unit"])
        except ValueError:
            problems.append(Problem(f"line {line}.alloc_unit", "not an integer"))
            unit = 1
        models.append(
            AcceleratorModel(
                id=ModelId(row["id"].strip()),
                family=row["family"].strip(),
                vendor=row["vendor"].strip(),
                name=row["name"].strip(),
                memory_gb=_opt_float(row, "memory_gb", line, problems),
                memory_bw_gbs=_opt_float(row, "memory_bw_gbs", line, problems),
                peak_tflops=peak,
                peak_precision=precision,
                peak_basis=basis,
                stack=stack,
                resource_name=row["resource_name"].strip(),
                alloc_unit=unit,
                source=row["source"].strip(),
            )
        )
    if problems:
        raise ValidationError(problems, source)
    return Catalog(models)


@functools.cache
def load_catalog(path: Path | None = None) -> Catalog:
    """The bundled catalog, or one read from ``path``."""
    if path is None:
        text = resources.files("suanli.catalog").joinpath("accelerators.csv").read_text("utf-8")
        return parse_catalog(text)
    return parse_catalog(path.read_text("utf-8"), str(path))
