"""The `mlci.yaml` schema and its loader.

Every error names the file and the key and becomes exit code 2 (see `mlci.errors`).
Relative paths in the config are resolved against the config file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from mlci.errors import MlciError

if TYPE_CHECKING:
    from mlci.images import ImageSpec

# Metrics where a smaller value is better; everything else is "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
CLASSIFICATION_METRICS = (
    "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
    "log_loss", "roc_auc",
    # of the positive class (data.positive_label; with two classes, inferred when unset)
    "precision", "recall", "f1", "average_precision",
)
POSITIVE_METRICS = frozenset({"precision", "recall", "f1", "average_precision"})
REGRESSION_METRICS = ("mae", "rmse", "r2")
KNOWN_METRICS = frozenset(CLASSIFICATION_METRICS + REGRESSION_METRICS)


Task = Literal["classification", "regression"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsvOptions(_Strict):
    sep: str = Field(default=",", min_length=1, description="Field separator (.tsv: tab).")
    header: bool = Field(default=True, description="First line holds the column names.")
    encoding: str = Field(default="utf-8")
    columns: list[str] | None = Field(
        default=None, description="Column names when the file has no header line."
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        import codecs

        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @model_validator(mode="after")
    def _names(self) -> CsvOptions:
        if not self.header and not self.columns:
            raise ValueError("header: false needs columns: [names...]")
        return self


class DataConfig(_Strict):
    train: str = Field(description="Training data, CSV or Parquet; may be DVC-tracked. With "
                                   "image_size: a folder with one sub-folder of images per "
                                   "class, or a table of image paths and labels.")
    golden: str = Field(description="Fixed evaluation snapshot.")
    target: str = Field(description="Name of the label column (image data: default 'label'; "
                                    "an image folder's labels are its sub-folder names).")
    expectations: str = Field(
        default="expectations/train.json", description="Great Expectations suite (JSON)."
    )
    features: list[str] | None = Field(
        default=None, description="Feature columns; default: every column but the target."
    )
    drop: list[str] = Field(default_factory=list, description="Columns never used as features.")
    categorical: list[str] = Field(
        default_factory=list, description="Columns one-hot encoded even when they hold numbers."
    )
    csv: CsvOptions = Field(default_factory=lambda: CsvOptions())
    image_size: int | tuple[int, int] | None = Field(
        default=None, description="Image data: the height and width (or one side) every "
                                  "image is resized to; the model takes (N, H, W, C) uint8.")
    channels: Literal[1, 3] = Field(default=3, description="Image data: 1 grayscale, 3 RGB.")
    image_column: str = Field(default="path",
                              description="Image data in a table: the column of file paths "
                                          "(relative to the table's folder).")
    positive_label: bool | int | float | str | None = Field(
        default=None, description="The class precision, recall, f1 and average_precision "
                                  "are about; default with two classes: True or 1 when "
                                  "present, else the rarer class on the golden set.")

    @model_validator(mode="before")
    @classmethod
    def _image_target(cls, v: Any) -> Any:
        if isinstance(v, dict) and v.get("image_size") is not None and "target" not in v:
            return {**v, "target": "label"}
        return v

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
        sides = (v,) if isinstance(v, int) else (v or ())
        if any(not 0 < s <= 8192 for s in sides):
            raise ValueError("image sides must be 1..8192 pixels")
        return v

    @property
    def image_spec(self) -> ImageSpec | None:
        """The tensor each image becomes; None for tabular data."""
        if self.image_size is None:
            return None
        from mlci.images import ImageSpec

        h, w = (self.image_size, self.image_size) if isinstance(self.image_size, int) \
            else self.image_size
        return ImageSpec(h, w, self.channels)


class ModelConfig(_Strict):
    estimator: str | None = Field(default=None, description="Import path of an estimator class.")
    params: dict[str, Any] | str = Field(
        default_factory=dict,
        description="Estimator or entrypoint parameters; values like ${train.n_estimators} "
                    "(or the whole mapping as ${train}) are read from params_file.",
    )
    params_file: str = Field(default="params.yaml", description="DVC-style parameters file.")
    entrypoint: str | None = Field(
        default=None, description="file.py:function or module:function returning a fitted model."
    )
    seed: int = 0
    # filled at load: {param: "params.yaml:key"} for each value read from params_file
    _params_refs: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def resolved_params(self) -> dict[str, Any]:
        """`params` after load, with the params_file references read."""
        if not isinstance(self.params, dict):
            raise MlciError(f"model.params {self.params!r} was not resolved: the config was "
                            "loaded with resolve=False")
        return self.params

    @property
    def params_refs(self) -> dict[str, str]:
        return self._params_refs

    @model_validator(mode="after")
    def _one_of(self) -> ModelConfig:
        if bool(self.estimator) == bool(self.entrypoint):
            raise ValueError("give exactly one of model.estimator and model.entrypoint")
        if self.entrypoint and ":" not in self.entrypoint:
            raise ValueError("model.entrypoint must look like file.py:function or module:function")
        return self


class GateConfig(_Strict):
    min: dict[str, float] = Field(default_factory=dict, description="Floors (higher is better).")
    max: dict[str, float] = Field(default_factory=dict, description="Ceilings (lower is better).")
    max_regression: dict[str, float] = Field(
        default_factory=dict, description="Allowed loss against the champion, per metric."
    )
    bootstrap: int = Field(default=1000, ge=0, le=100_000)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    regression_rule: Literal["point", "bound"] = Field(
        default="bound", description="bound: fail only when the bootstrap interval shows the "
                                     "candidate worse by more than the allowance; point: when "
                                     "the point estimate is.")

    @field_validator("min", "max", "max_regression")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - KNOWN_METRICS)
        if unknown:
            raise ValueError(
                f"unknown metric {unknown[0]!r} (known: {', '.join(sorted(KNOWN_METRICS))})"
            )
        return v


class ValidationConfig(_Strict):
    block_training: bool = Field(default=True, description="Refuse to train on invalid data.")
    max_examples: int = Field(default=5, ge=0, le=100)
    max_golden_overlap: float = Field(
        default=0.01, ge=0, le=1,
        description="Largest share of golden rows identical to training rows (a leak: the "
                    "model is scored on rows it trained on); above it validation fails. "
                    "Also the largest share of a data update's rows that may equal golden rows.")


class ReportConfig(_Strict):
    title: str | None = None
    max_chars: int = Field(default=60_000, ge=2_000, le=65_536)


class EvaluationConfig(_Strict):
    baseline_file: str = Field(
        default="mlci-baseline.json",
        description="Committed golden-set record used as the baseline when no registry champion.",
    )


class DriftSettings(_Strict):
    alpha: float = Field(default=0.05, gt=0, lt=1)
    wasserstein_threshold: float = Field(default=0.1, gt=0)
    jensenshannon_threshold: float = Field(default=0.1, gt=0, le=1)
    psi_threshold: float = Field(default=0.2, gt=0)
    min_samples: int = Field(default=30, ge=1)
    share_threshold: float = Field(
        default=0.0, ge=0, le=1, description="Dataset drift when more than this share of the "
                                             "columns is shown drifted (0: any column).")
    method: Literal["auto", "ks", "wasserstein", "chi2", "jensenshannon", "psi"] = "auto"
    per_column: dict[str, dict[str, Any]] = Field(default_factory=dict)
    windows: int | None = Field(
        default=None, ge=1, description="alpha is spent over this many windows (monitor "
                                        "default 100, data update 1).")


class FetchConfig(_Strict):
    """Where `data update --source` may read from (SECURITY.md: a source is untrusted)."""

    schemes: list[str] = Field(default_factory=lambda: ["file", "https"],
                               description="Allowed URL schemes; a plain path is 'file'.")
    hosts: list[str] = Field(default_factory=list,
                             description="Allowed hosts: exact names, or '.example.com' for "
                                         "its subdomains. Empty: no remote host.")
    private_addresses: list[str] = Field(
        default_factory=list, description="Private or loopback IPs/CIDRs a host may resolve "
                                          "to (at every redirect); others are refused.")
    local_roots: list[str] = Field(default_factory=lambda: ["."],
                                   description="Folders (relative to the config) a local "
                                               "source must resolve under.")
    max_bytes: int = Field(default=2 * 2**30, gt=0,
                           description="Largest source, counted after decompression.")
    max_rows: int = Field(default=10_000_000, gt=0,
                          description="Most rows a Parquet source may declare (checked from "
                                      "its footer before reading).")
    max_cells: int = Field(default=100_000_000, gt=0,
                           description="Most values (rows x columns) a Parquet source may "
                                       "declare (checked before reading).")


class DataUpdateConfig(_Strict):
    mode: Literal["append", "replace"] = "append"
    on_drift: Literal["block", "warn"] = Field(
        default="warn", description="Drifted-but-valid new data: refuse it, or train and flag it."
    )
    max_duplicate_share: float = Field(default=0.05, ge=0, le=1)
    timeout: float = Field(default=60, gt=0,
                           description="Deadline in seconds for the whole fetch of a source.")
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    push: bool = Field(default=True, description="dvc push after a successful update.")
    drift: DriftSettings = Field(default_factory=DriftSettings)


class MonitorConfig(_Strict):
    drift: DriftSettings = Field(default_factory=DriftSettings)
    decay_metric: Literal["auto", "accuracy", "mae"] = Field(
        default="auto", description="auto: accuracy for classification, MAE for regression.")
    decay_margin: float = Field(default=0.02, ge=0, lt=1,
                                description="Allowed drop of live accuracy below the baseline "
                                            "(MAE: allowed relative rise).")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_labels: int = Field(default=100, ge=1)
    retrain_on: list[Literal["drift", "dataset_drift", "decay"]] = Field(
        default_factory=lambda: ["dataset_drift", "decay"])  # type: ignore[arg-type]


class Config(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # what the file says; None: inferred at load from the estimator (is_regressor/
    # is_classifier), else the target. Code reads `task`, which is always set after load.
    declared_task: Task | None = Field(default=None, alias="task")
    _task: Task = PrivateAttr(default="classification")
    preprocess: Literal["auto", "none"] = Field(
        default="auto", description="auto: impute, one-hot, expand dates, drop IDs; none: raw."
    )
    tracking_uri: str | None = None
    data: DataConfig
    model: ModelConfig
    gate: GateConfig = Field(default_factory=GateConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    data_update: DataUpdateConfig = Field(default_factory=DataUpdateConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)

    # not part of the file: where it was read from
    path: Path = Field(default=Path("mlci.yaml"), exclude=True)

    def model_post_init(self, context: Any, /) -> None:
        self._task = self.declared_task or "classification"

    @property
    def task(self) -> Task:
        """The task the model is scored as: declared, inferred at load, else classification."""
        return self._task

    @task.setter
    def task(self, value: Task) -> None:
        self._task = value

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else (self.root / q)

    @property
    def feature_filter(self) -> list[str] | None:
        return self.data.features


def load_config(path: str | os.PathLike[str], *, check_files: bool = True,
                resolve: bool = True) -> Config:
    """Read and validate `mlci.yaml`; raise `MlciError` (exit 2) naming the file and key.

    With `resolve`, the model is resolved too (params.yaml references, the estimator class or
    entrypoint function, the task, and the gate's metric names for that task), so a wrong name
    is reported before any stage runs."""
    p = Path(path)
    if not p.is_file():
        raise MlciError(f"{p}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise MlciError(f"{p}: not valid UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise MlciError(f"{p}: malformed YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise MlciError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        raise MlciError(f"{p}: {key}: {msg}") from None
    cfg.path = p
    if check_files:
        for key in ("train", "golden", "expectations"):
            f = cfg.resolve(getattr(cfg.data, key))
            if key == "expectations" and not f.exists():
                continue  # absent suite is reported by `mlci validate` with a hint to run init
            if key != "expectations" and f.is_dir():
                if cfg.data.image_size is None:
                    raise MlciError(f"{p}: data.{key}: {getattr(cfg.data, key)} is a folder: "
                                    "image data needs data.image_size")
                continue
            if not f.is_file():
                raise MlciError(f"{p}: data.{key}: file not found: {getattr(cfg.data, key)}")
    from mlci import modelspec

    modelspec.import_project(cfg.root)
    if resolve:
        modelspec.resolve(cfg, with_data=check_files)
    return cfg
