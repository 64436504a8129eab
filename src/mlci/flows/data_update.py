"""`mlci data update`: validate-first retraining on new data, all or nothing.

Order: fetch → read → schema and duplicate checks → write the new training file → Great
Expectations → drift against the current training data → `dvc add` → train → evaluate (gate)
→ `dvc push`. Any failure restores the tracked data files, the DVC cache and the registry
(version, run and `candidate` alias) to what they were.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.data import dvc
from mlci.data.fetch import FetchPolicy, fetch, redact
from mlci.data.load import read_table
from mlci.errors import MlciError, VerdictFailed
from mlci.io import atomic_write_bytes, atomic_write_json, read_json, sha256_file

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config

SCHEMA = "mlci.data-update/1"
JOURNAL = "data_update.journal"


class _PeakRss:
    """Peak resident memory of this process while a step runs (sampled from /proc)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except OSError:
            return 0

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> _PeakRss:
        self.peak = self._rss()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())


class Steps:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    @contextmanager
    def step(self, name: str):
        t = time.perf_counter()
        with _PeakRss() as mem:
            yield
        self.rows.append({"step": name, "seconds": round(time.perf_counter() - t, 3),
                          "peak_rss_mib": round(mem.peak / 2**20, 1)})


class JournalConflict(MlciError):
    """A file changed after the interrupted update wrote it: rolling back would lose that."""


class Undo:
    """What to put back if a later step fails, kept on disk as a journal
    (`<out>/data_update.journal/`) so that the next run rolls back an update that was killed
    half-way (kill -9, a cancelled job): copies of the files before they changed, what the
    update was about to write to them (its digest, and for an append the exact bytes added),
    the DVC cache objects added, the registration made or begun. A completed update deletes
    the journal.

    Restoring undoes exactly the update's change: a file still as the update wrote it gets its
    old content back; an appended file that gained rows since keeps them (only the update's
    own bytes are cut out); a file changed in any other way is not touched and the rollback
    stops with an error (the journal stays for a person to decide)."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.files: dict[Path, bytes | None] = {}
        self.expected: dict[Path, dict[str, Any]] = {}  # path -> after digest, append
        self.cache_objects: list[Path] = []
        self.registry: dict[str, Any] | None = None

    def _save(self) -> None:
        files: dict[str, str | None] = {}
        index = {"files": files, "cache_objects": [str(o) for o in self.cache_objects],
                 "registry": self.registry,
                 "expected": {str(p): e for p, e in self.expected.items()}}
        for i, (path, data) in enumerate(self.files.items()):
            backup = self.journal / f"file-{i}"
            if data is not None and not backup.exists():
                atomic_write_bytes(backup, data)
            files[str(path)] = backup.name if data is not None else None
        atomic_write_json(self.journal / "journal.json", index)

    def keep(self, path: Path) -> None:
        if path not in self.files:
            self.files[path] = path.read_bytes() if path.is_file() else None
            self._save()

    def expect(self, path: Path, after: bytes, appended: bytes | None = None) -> None:
        """Record, before writing it, what the update writes to `path` (`appended`: the
        bytes it adds after the old content)."""
        import hashlib

        e: dict[str, Any] = {"after": hashlib.sha256(after).hexdigest()}
        if appended is not None:
            tail = self.journal / f"appended-{len(self.expected)}"
            atomic_write_bytes(tail, appended)
            e.update(appended=tail.name, at=len(after) - len(appended))
        self.expected[path] = e
        self._save()

    def add_cache_object(self, obj: Path) -> None:
        self.cache_objects.append(obj)
        self._save()

    def set_registry(self, reg: dict[str, Any]) -> None:
        self.registry = reg
        self._save()

    @classmethod
    def load(cls, journal: Path) -> Undo | None:
        try:
            index = read_json(journal / "journal.json")
        except (OSError, ValueError):
            return None
        u = cls(journal)
        for path, backup in index["files"].items():
            u.files[Path(path)] = (journal / backup).read_bytes() if backup else None
        u.cache_objects = [Path(o) for o in index["cache_objects"]]
        u.registry = index["registry"]
        u.expected = {Path(p): e for p, e in index.get("expected", {}).items()}
        return u

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.journal, ignore_errors=True)

    def _undone(self, path: Path, before: bytes | None) -> bytes | None:
        """What `path` should hold without this update's change (raises JournalConflict)."""
        import hashlib

        now = path.read_bytes() if path.is_file() else None
        e = self.expected.get(path)
        if now == before or e is None or now is None:
            return before  # unchanged, written by a tool (dvc), or gone: the old content
        if hashlib.sha256(now).hexdigest() == e["after"]:
            return before
        if "appended" in e and before is not None:
            tail, at = (self.journal / e["appended"]).read_bytes(), e["at"]
            if now[:len(before)] == before and now[at:at + len(tail)] == tail:
                return before + now[at + len(tail):]  # rows added since are kept
        raise JournalConflict(
            f"{path} changed after an interrupted data update wrote it; it is not rolled "
            f"back (that would lose the change). Check it, then delete {self.journal}")

    def restore(self, cfg: Config, out_dir: Path) -> None:
        undone = {p: self._undone(p, d) for p, d in self.files.items()}  # all checked first
        for path, data in undone.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_bytes(path, data)
        for obj in self.cache_objects:
            obj.unlink(missing_ok=True)
        if self.registry:
            _undo_registration(cfg, out_dir, self.registry)
        self.clear()


NO_REMOTE = ("no DVC remote: the new data was not pushed and lives only in this checkout's "
             "DVC cache (on a CI runner it is lost when the job ends); add one with "
             "`mlci data init --remote <url>` or `dvc remote add -d`, or set "
             "`data_update.push: false` to keep the data local on purpose")


def recover(cfg: Config, out_dir: Path) -> bool:
    """Roll back an update that stopped without finishing (its journal is still there)."""
    journal = out_dir / JOURNAL
    undo = Undo.load(journal)
    if undo is None:
        Undo(journal).clear()  # killed before its first entry: nothing had changed
        return False
    undo.restore(cfg, out_dir)
    return True


def row_keys(df: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of its values, normalised: numbers as float64 (so `1.50`, `1.5`
    and `15e-1` agree), text without surrounding whitespace or carriage returns. The same rows
    resent with CRLF line endings, in another order or with other number formatting hash
    alike."""
    import pandas as pd

    norm = pd.DataFrame(index=range(len(df)))
    for c in df.columns:
        col = df[c].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            norm[c] = col.astype("float64")
        else:
            norm[c] = col.astype(str).str.replace("\r", "", regex=False).str.strip()
    return pd.util.hash_pandas_object(norm, index=False).to_numpy()


def content_digest(keys: np.ndarray) -> str:
    """A batch's digest that ignores row order and formatting (its sorted row hashes)."""
    import hashlib

    return "rows:" + hashlib.sha256(np.sort(keys).tobytes()).hexdigest()


def _refuse_applied(applied: dict[str, Any], digest: str, key: str) -> None:
    """Refuse a batch applied before: the same bytes, or the same rows however written."""
    seen = applied.get(key) or next((v for v in applied.values()
                                     if isinstance(v, dict) and v.get("content") == key), None)
    if seen:
        raise VerdictFailed(f"this batch ({digest[:19]}…) was already applied on "
                            f"{seen.get('time', '?')}: refused as a duplicate")


def batches_file(train_path: Path) -> Path:
    """Digests of the batches applied to a training file, kept beside it (commit it too)."""
    return train_path.with_name(train_path.name + ".batches.json")


def applied_batches(train_path: Path) -> dict[str, Any]:
    p = batches_file(train_path)
    try:
        return read_json(p) if p.is_file() else {}
    except ValueError:
        raise MlciError(f"{p}: not valid JSON; fix or delete it") from None


def _undo_registration(cfg: Config, out_dir: Path, reg: dict[str, Any]) -> None:
    from mlci.registry import runs, tracking

    c = tracking.client(cfg, out_dir)
    # the version it registered, or (killed during training, before it could say which)
    # the versions created since it began that trained on exactly the file it wrote
    made = [(reg["version"], reg["run_id"])] if reg.get("version") else \
        runs.trained_on(c, reg["name"], reg["since_ms"], reg["train_hash"])
    runs.unregister(c, reg["name"], made, previous_candidate=reg["previous_candidate"],
                    model_was_new=reg["model_was_new"])


def _registry_state(cfg: Config, out_dir: Path) -> tuple[str | None, bool]:
    from mlci.registry import tracking
    from mlci.registry.aliases import current, model_exists

    c = tracking.client(cfg, out_dir)
    if not model_exists(c, cfg.name):
        return None, True
    return current(c, cfg.name, "candidate"), False


def _table_bytes(df: pd.DataFrame, path: Path) -> bytes:
    import io

    buf = io.BytesIO()
    if path.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(buf, index=False)
    else:
        df.to_csv(buf, index=False)
    return buf.getvalue()


def schema_problems(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    import pandas as pd

    out = []
    missing = [c for c in old.columns if c not in new.columns]
    extra = [c for c in new.columns if c not in old.columns]
    if missing:
        out.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if extra:  # counted, not named: the names are the source's content (its first line)
        out.append(f"{len(extra)} unexpected column(s)")
    for c in old.columns:
        if c in new.columns and pd.api.types.is_numeric_dtype(old[c]) != \
                pd.api.types.is_numeric_dtype(new[c]):
            out.append(f"column {c!r} changed type {old[c].dtype} -> {new[c].dtype}")
    return out


def data_diff(old: pd.DataFrame, new_train: pd.DataFrame, drift: dict[str, Any]) -> dict[str, Any]:
    """What changed between the previous and the new training data."""
    import pandas as pd

    h_old = pd.util.hash_pandas_object(old, index=False).value_counts()
    h_new = pd.util.hash_pandas_object(new_train, index=False).value_counts()
    both = pd.concat([h_old, h_new], axis=1).fillna(0)
    delta = both.iloc[:, 1] - both.iloc[:, 0]
    drifted = set(drift.get("drifted_columns", []))
    cols = []
    for c in new_train.columns:
        if c not in old.columns:
            continue
        a, b = old[c], new_train[c]
        summary: dict[str, Any]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            summary = {"mean": [_r(a.mean()), _r(b.mean())], "std": [_r(a.std()), _r(b.std())]}
        else:
            sa = a.astype(str).value_counts(normalize=True)
            sb = b.astype(str).value_counts(normalize=True)
            cats = list(dict.fromkeys([*sa.index[:10], *sb.index[:10]]))
            summary = {"shares": {k: [_r(sa.get(k, 0.0)), _r(sb.get(k, 0.0))] for k in cats}}
        cols.append({"column": c, "drifted": c in drifted, **summary})
    return {
        "rows_before": len(old), "rows_after": len(new_train),
        "rows_added": int(delta.clip(lower=0).sum()),
        "rows_removed": int((-delta).clip(lower=0).sum()),
        "columns_added": [c for c in new_train.columns if c not in old.columns],
        "columns_removed": [c for c in old.columns if c not in new_train.columns],
        "dtype_changes": {c: [str(old[c].dtype), str(new_train[c].dtype)]
                          for c in old.columns if c in new_train.columns
                          and str(old[c].dtype) != str(new_train[c].dtype)},
        "columns": cols,
    }


def _r(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else round(f, 6)


def fetch_policy(cfg: Config) -> FetchPolicy:
    f = cfg.data_update.fetch
    return FetchPolicy(schemes=tuple(s.lower() for s in f.schemes), hosts=tuple(f.hosts),
                       private_addresses=tuple(f.private_addresses),
                       local_roots=tuple(cfg.resolve(r) for r in f.local_roots),
                       max_bytes=f.max_bytes, timeout=cfg.data_update.timeout,
                       max_rows=f.max_rows, max_cells=f.max_cells)


def update(cfg: Config, out_dir: Path, source: str, *, mode: str | None = None,
           push: bool | None = None, train_model: bool = True,
           baseline: str = "auto") -> dict[str, Any]:
    """Run the data-trigger pipeline. Raises VerdictFailed/MlciError after restoring state."""
    import pandas as pd

    from mlci.stats.drift import DriftConfig, compare

    if train_model:
        from mlci.registry.trust import refuse_untrusted_write

        refuse_untrusted_write("register a model version")
    mode = mode or cfg.data_update.mode
    push = cfg.data_update.push if push is None else push
    steps = Steps()
    record: dict[str, Any] = {"schema": SCHEMA, "source": redact(source), "mode": mode,
                              "status": "running", "steps": steps.rows}
    train_path = cfg.resolve(cfg.data.train)
    dvc_root = dvc.repo_root(cfg.root)
    tracked = dvc_root is not None and dvc.is_tracked(train_path)
    recovered = recover(cfg, out_dir)
    undo = Undo(out_dir / JOURNAL)
    if recovered:
        record["recovered"] = "rolled back an earlier update that did not finish"

    fetched: list[Path] = []

    def fail(exc: BaseException, status: str) -> None:
        for f in fetched:  # refused content does not stay on the runner's disk
            f.unlink(missing_ok=True)
        undo.restore(cfg, out_dir)
        record["status"] = status
        if isinstance(exc, MlciError):
            record["error"] = exc.format_message()
        else:
            record["error"] = getattr(exc, "message", None) or str(exc)
        atomic_write_json(out_dir / "data_update.json", record)

    try:
        _refuse_stage_output(cfg, train_path)
        with steps.step("fetch"):
            incoming = fetch(source, out_dir / "incoming", fetch_policy(cfg))
            fetched.append(incoming)
        digest = "sha256:" + sha256_file(incoming)
        record["batch_digest"] = digest
        applied_before = applied_batches(train_path)
        _refuse_applied(applied_before, digest, digest)
        with steps.step("read"):
            batch = read_table(incoming, redact(source))
            old = read_table(train_path, cfg.data.train)
        problems = schema_problems(old, batch)
        if problems:
            raise VerdictFailed(f"new data has a different schema: {'; '.join(problems)}")
        batch = batch[list(old.columns)]
        new_keys = row_keys(batch)
        content = content_digest(new_keys)
        record["content_digest"] = content
        _refuse_applied(applied_before, digest, content)
        limit = cfg.data_update.max_duplicate_share
        _refuse_golden_rows(cfg, batch)
        dup_share = float(batch.duplicated().mean())
        record["duplicate_share"] = dup_share
        if dup_share > limit:
            raise VerdictFailed(f"new data has {dup_share:.1%} duplicated rows "
                                f"(limit {limit:.1%})")
        if mode == "append":
            known = float(np.isin(new_keys, row_keys(old)).mean()) if len(batch) else 0.0
            record["known_share"] = known
            if known > limit:
                raise VerdictFailed(f"{known:.1%} of the new rows are already in the training "
                                    f"data (limit {limit:.1%}; compared after normalising "
                                    "line endings, row order and number formatting)")
        new_train = pd.concat([old, batch], ignore_index=True) if mode == "append" else batch
        with steps.step("write"):
            undo.keep(train_path)
            old_bytes = undo.files[train_path]
            if mode == "append" and train_path.suffix.lower() == ".csv" and old_bytes:
                # append the new rows' text: rewriting a million-row CSV costs ~20 s
                tail = batch.to_csv(index=False, header=False).encode("utf-8")
                sep = b"" if old_bytes.endswith(b"\n") else b"\n"
                undo.expect(train_path, old_bytes + sep + tail, appended=sep + tail)
                atomic_write_bytes(train_path, old_bytes + sep + tail)
            else:
                data = _table_bytes(new_train, train_path)
                undo.expect(train_path, data)
                atomic_write_bytes(train_path, data)
        with steps.step("validate"):
            from mlci.data.validate import validate

            validation = validate(cfg, out_dir)
        record["validation"] = {"success": validation["success"]}
        with steps.step("drift"):
            d = cfg.data_update.drift
            drift = compare(old, batch, DriftConfig(**d.model_dump()),
                            columns=[c for c in old.columns])
        record["drift"] = drift
        record["data_diff"] = data_diff(old, new_train, drift)
        if not validation["success"]:
            raise VerdictFailed("new data failed validation (see validation.json)")
        if drift["any_drift"] and cfg.data_update.on_drift == "block":
            raise VerdictFailed("new data drifted in " + ", ".join(drift["drifted_columns"]) +
                                " (data_update.on_drift: block)")
        if tracked:
            with steps.step("dvc add"):
                from mlci.data.hashing import md5_file

                undo.keep(train_path.with_name(train_path.name + ".dvc"))
                assert dvc_root is not None  # `tracked` says so
                obj = dvc.cache_object(dvc_root, md5_file(train_path))
                if not obj.exists():
                    undo.add_cache_object(obj)
                dvc.add([train_path], cwd=cfg.root)
        if train_model:
            from mlci.data.hashing import data_hash
            from mlci.evaluate import evaluate
            from mlci.train import train

            prev, new_model = _registry_state(cfg, out_dir)
            h = data_hash(train_path)
            reg = {"name": cfg.name, "previous_candidate": prev, "model_was_new": new_model,
                   "since_ms": int(time.time() * 1000) - 1000,
                   "train_hash": f"{h['algo']}:{h['value']}"}
            undo.set_registry(reg)  # before training: a kill during it leaves no orphan
            with steps.step("train"):
                run = train(cfg, out_dir)
            undo.set_registry({**reg, "version": run["model_version"],
                               "run_id": run["run_id"]})
            record["run_id"], record["model_version"] = run["run_id"], run["model_version"]
            with steps.step("evaluate"):
                e = evaluate(cfg, out_dir, baseline=baseline)
            record["verdict"] = e["verdict"]
            if e["verdict"] != "pass":
                raise VerdictFailed("gate failed on the new data: " + "; ".join(e["failed"]))
        if tracked and push and dvc.has_remote(cfg.root):
            with steps.step("dvc push"):
                dvc.push([train_path], cwd=cfg.root)
            record["pushed"] = True
        elif tracked and push:  # said out loud: on a CI runner the data dies with the job
            record["pushed"] = False
            record["warnings"] = [NO_REMOTE]
    except VerdictFailed as exc:
        fail(exc, "refused")
        raise
    except MlciError as exc:
        fail(exc, "error")
        raise
    except BaseException as exc:
        fail(exc, "error")
        raise
    from datetime import datetime, timezone

    applied = applied_batches(train_path)
    applied[digest] = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "source": redact(source), "rows": int(len(batch)), "mode": mode,
                       "content": content}
    undo.keep(batches_file(train_path))  # a kill before the journal is cleared undoes it too
    atomic_write_json(batches_file(train_path), applied)
    undo.clear()  # done: the journal goes last
    record["status"] = "updated"
    record["tracked_by_dvc"] = tracked
    atomic_write_json(out_dir / "data_update.json", record)
    return record


def _refuse_golden_rows(cfg: Config, batch: pd.DataFrame) -> None:
    """New rows identical to golden rows would put the golden set into training (a leak the
    gate cannot see): refused above validation.max_golden_overlap of the batch."""
    from mlci.data import leakage

    golden = read_table(cfg.resolve(cfg.data.golden), cfg.data.golden)
    o = leakage.overlap(golden, batch)
    if o.rows and o.share > cfg.validation.max_golden_overlap:
        raise VerdictFailed(f"new data has {o.rows} of {o.of} rows ({o.share:.1%}) identical "
                            f"to rows of the golden set {cfg.data.golden}: refused, the golden "
                            "set must stay out of training (validation.max_golden_overlap "
                            f"{cfg.validation.max_golden_overlap:.1%})")


def _refuse_stage_output(cfg: Config, train_path: Path) -> None:
    """A training file that a DVC stage writes would be overwritten by the next `dvc repro`:
    the update belongs in the stage's input."""
    from mlci.data.dvc_stages import producer

    st = producer(train_path, cfg.root)
    if st is not None:
        deps = ", ".join(st.deps[:5]) or "its deps"
        raise MlciError(f"data.train {cfg.data.train} is the output of DVC stage {st.name!r} "
                        f"({st.file.name}): the next dvc repro would overwrite an update; "
                        f"update the stage's input ({deps}) and run dvc repro")
