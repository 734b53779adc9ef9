"""Loading run directories for a report: results.json (typed, required), manifest.json and history.json."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.registry import normalize_name
from ..errors import RunError
from ..results import ResultsDocument, Variant, load_results
from ..study import dataset_label


@dataclass
class RunData:
    """What one run directory holds; every piece but results.json is optional."""

    run_dir: Path
    results: ResultsDocument
    manifest: dict[str, Any] | None = None
    history: dict[str, list[float]] | None = None
    notes: list[str] = field(default_factory=list)  # what was missing or skipped, said in the report
    slug_suffix: str = ""  # set when two runs in one report share dataset and model

    @property
    def dataset(self) -> str:
        return str(self.results.dataset or (self.manifest or {}).get("dataset") or self.run_dir.parent.name)

    @property
    def model(self) -> str:
        return str(self.results.model or (self.manifest or {}).get("model") or self.run_dir.name)

    @property
    def label(self) -> str:
        return f"{dataset_label(self.dataset)} / {self.model}"

    @property
    def slug(self) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", f"{normalize_name(self.dataset)}-{self.model}".lower()).strip("-")
        return base + self.slug_suffix

    @property
    def variants(self) -> list[Variant]:
        return [v for v in self.results.variants if v.name]

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def stage(self, name: str) -> dict[str, Any]:
        """The manifest's record of one stage (``baseline``, ``compress:qat``, ...); {} without one."""
        record = ((self.manifest or {}).get("stages") or {}).get(name)
        return record if isinstance(record, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not readable JSON ({exc}); rerun `dnncomp run` to rewrite it") from exc


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory. results.json is required (see :func:`dnncomp.results.load_results`);
    manifest.json and history.json are optional. Raises RunError (ResultsError for results.json)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a directory; pass a run directory such as runs/mnist/study-mnist")
    run = RunData(run_dir=run_dir, results=load_results(run_dir / "results.json"))
    manifest_path = run_dir / "manifest.json"
    if manifest_path.is_file():
        from ..run import upgrade_manifest

        manifest = _read_json(manifest_path)
        run.manifest = upgrade_manifest(manifest) if isinstance(manifest, dict) else None
    else:
        run.notes.append("no manifest.json: provenance comes from results.json alone")
    history_path = run_dir / "history.json"
    if history_path.is_file():
        run.history = _history(_read_json(history_path))
    return run


def _history(raw: Any) -> dict[str, list[float]] | None:
    """history.json as dnncomp.train writes it: Keras' per-epoch lists ({"loss": [...], "elapsed_s": [...]})."""
    if not isinstance(raw, dict):
        return None
    history = {}
    for key, values in raw.items():
        if isinstance(values, list) and values and all(isinstance(v, (int, float)) or v is None for v in values):
            history[str(key)] = [math.nan if v is None else float(v) for v in values]
    return history or None
