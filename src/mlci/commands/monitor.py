"""`mlci monitor`: drift and decay in production; dispatch or run retraining; watch a new
champion and roll it back automatically."""

from __future__ import annotations

import time
from pathlib import Path

import click

from mlci.commands._options import ALIASES, Duration, common, json_option


@click.command("monitor")
@common
@json_option
@click.option("--window", "window_path", required=True, envvar="MLCI_WINDOW",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Production data: the gateway's prediction log (.db) or a CSV/Parquet batch.")
@click.option("--alias", default="champion", show_default=True, envvar="MLCI_ALIAS",
              shell_complete=ALIASES,
              help="Alias whose reference is compared (env MLCI_ALIAS).")
@click.option("--version", default=None, envvar="MLCI_VERSION",
              help="Model version whose reference is compared, instead of --alias "
                   "(env MLCI_VERSION).")
@click.option("--since", type=Duration(), default=None, envvar="MLCI_SINCE",
              help="Only the last part of the prediction log, e.g. 3600, 1h (env MLCI_SINCE).")
@click.option("--variant", default=None, envvar="MLCI_VARIANT",
              help="Only rows served by this variant (champion|challenger).")
@click.option("--dispatch", is_flag=True, envvar="MLCI_DISPATCH",
              help="On an alert, send repository_dispatch mlci-retrain (GITHUB_TOKEN).")
@click.option("--export", "export_path", default=None, envvar="MLCI_EXPORT",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Write the labelled window as training data (CSV) for the retraining.")
@click.option("--source-url", default=None, envvar="MLCI_SOURCE_URL",
              help="Where the retraining job can fetch the exported window (default: --export).")
@click.option("--retrain-locally", is_flag=True, envvar="MLCI_RETRAIN_LOCALLY",
              help="On an alert, run `mlci data update` here on the labelled window.")
@click.option("--watch", "watch_mode", is_flag=True, envvar="MLCI_WATCH",
              help="Post-promotion watch: roll the champion back if its live accuracy dropped.")
def command(config_path: Path, out_dir: Path, as_json: bool, window_path: Path, alias: str,
            version: str | None, since: float | None, variant: str | None, dispatch: bool,
            export_path: Path | None,
            source_url: str | None, retrain_locally: bool, watch_mode: bool) -> int:
    """Compare production data with the training reference; exit 1 when thresholds are
    crossed (or, with --watch, when the champion was rolled back)."""
    import json

    from mlci.config import load_config
    from mlci.flows import monitor as M
    from mlci.gha.dispatch import dispatch as send_dispatch

    cfg = load_config(config_path)
    model_ref = version or alias
    since_ts = time.time() - since if since is not None else None
    if watch_mode:
        r = M.watch(cfg, out_dir, window_path, since=since_ts)
        if r["alert"] and dispatch:
            r["actions"].append(send_dispatch("mlci-rollback", {
                "reason": r["summary"][:500], "model": cfg.name, "rolled_back": r["version"],
                "now_serving": r["rollback"]["version"]}))
        click.echo(json.dumps({k: r[k] for k in ("alert", "version", "summary", "actions")})
                   if as_json else r["summary"])
        for a in r["actions"]:
            if not as_json:
                click.echo(a)
        return 1 if r["alert"] else 0
    r = M.monitor(cfg, out_dir, window_path, model_ref=model_ref, since=since_ts,
                  variant=variant)
    window = r.pop("_window")
    if r["alert"]:
        source = source_url
        if export_path is not None or retrain_locally:
            dest = export_path or (out_dir / "window.csv")
            rows = M.export_window(window, cfg, dest)
            r["actions"].append(f"exported {rows} labelled rows to {dest}")
            source = source or str(dest.resolve())
        if dispatch:
            r["actions"].append(send_dispatch("mlci-retrain", {
                "reason": "; ".join(r["reasons"])[:500], "source": source,
                "model": cfg.name, "model_version": r["version"],
                "summary": r["summary"][:500],
                "window": json.dumps({"rows": r["window"]["rows"],
                                      "labelled": r["window"]["labelled"],
                                      "since": r["window"]["since"]})}))
        if retrain_locally:
            from mlci.errors import VerdictFailed
            from mlci.flows.data_update import update

            try:
                rec = update(cfg, out_dir, source or "", mode="append")
                r["actions"].append(f"retrained locally: {cfg.name} "
                                    f"v{rec.get('model_version')} registered as candidate")
            except VerdictFailed as exc:  # the update restored everything; say why
                r["actions"].append(f"local retraining refused: {exc.message}")
        from mlci.io import atomic_write_json, atomic_write_text

        atomic_write_json(out_dir / "monitor.json", r)
        atomic_write_text(out_dir / "monitor.md", M.to_markdown(r))
    if as_json:
        click.echo(json.dumps({k: r[k] for k in ("alert", "version", "summary", "reasons",
                                                 "actions")}
                              | {"drifted_columns": r["drift"]["drifted_columns"]}))
    else:
        click.echo(M.to_markdown(r))
        click.echo(f"wrote {out_dir / 'monitor.html'}")
    return 1 if r["alert"] else 0
