"""`clapsweep sync SWEEP`: upload the sweep's offline W&B runs with the `wandb sync` CLI.

The runs lie in <workdir>/wandb/wandb/offline-run-*; a run already uploaded has a
`*.wandb.synced` marker (written by `wandb sync`) and is left out. All pending folders go to
one `wandb sync` call, which uploads the folders of a resumed run (same id) in order.
Without W&B credentials the command stops with one message before anything runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from clapsweep.errors import UserError
from clapsweep.recipe.spec import SweepSpec
from clapsweep.sweep.tracking import has_api_key


def offline_runs(workdir: str | Path) -> list[Path]:
    """The sweep's offline run folders, oldest first (their names start with the time)."""
    root = Path(workdir) / "wandb"
    runs = [p for p in root.glob("**/offline-run-*") if p.is_dir()]
    return sorted(runs, key=lambda p: p.name)


def is_synced(run_dir: Path) -> bool:
    return any(run_dir.glob("*.wandb.synced"))


def wandb_cli() -> list[str]:
    """The wandb CLI of this Python environment (the venv's), not whichever is on PATH."""
    exe = Path(sys.executable).parent / "wandb"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "wandb"]


def sync_command(runs: list[Path]) -> list[str]:
    return [*wandb_cli(), "sync", *[str(p) for p in runs]]


def sync_sweep(
    spec: SweepSpec, dry_run: bool = False, say: Callable[[str], None] = print
) -> list[Path]:
    """Upload the pending offline runs of the sweep; returns the folders uploaded (or, with
    dry_run, the ones that would be). Raises UserError when there is nothing to upload from,
    no credentials, or `wandb sync` fails."""
    runs = offline_runs(spec.workdir)
    if not runs:
        raise UserError(
            f"no offline W&B runs under {spec.workdir}/wandb; run the sweep with "
            "tracking.wandb.mode: offline first"
        )
    pending = [p for p in runs if not is_synced(p)]
    say(f"{len(runs)} offline runs in {spec.workdir}/wandb, {len(runs) - len(pending)} uploaded")
    if not pending:
        return []
    command = sync_command(pending)
    if dry_run:
        say("would run: " + " ".join(command))
        return pending
    if not has_api_key():
        raise UserError(
            "sync: no W&B API key; run `wandb login` or set WANDB_API_KEY, then run "
            "`clapsweep sync` again (the runs stay offline until then)"
        )
    say(f"uploading {len(pending)} runs: {' '.join(command[:2])} ...")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}  # offline would no-op
    done = subprocess.run(command, stdin=subprocess.DEVNULL, env=env, check=False)
    if done.returncode != 0:
        raise UserError(
            f"sync: `wandb sync` failed (exit {done.returncode}), see its output above; "
            "check the network and the API key, then run `clapsweep sync` again"
        )
    say(f"uploaded {len(pending)} runs")
    return pending
