"""`clapsweep bench train|data|curate|eval`: parse arguments, run a benchmark (clapsweep.bench),
print its JSON.

`add_commands(subparsers)` adds the `bench` command to the main CLI. The commands also run on
their own (`python -m clapsweep.bench train ...`, via main() here), which needs none of the
sweep machinery; scripts/gpu_bench.sh uses that form.

Each command calls `use_wave_decoder_if_needed()` before it imports its benchmark (and with
it the pipeline), so that where soundfile is missing the stdlib WAV decoder stands in for it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types

from clapsweep.bench.wave_soundfile import use_wave_decoder_if_needed
from clapsweep.errors import UserError


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,2,4, got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0 such as 0,2,4, got {text!r}")
    return values


def _print(result: dict, args: argparse.Namespace | None = None) -> int:
    """Print the result; train and eval also record their figures (clapsweep.bench.figures)
    for the dry run's compute estimates, unless --no-figures."""
    if args is not None and args.figures:
        from clapsweep.bench.figures import record_figures

        try:
            if record_figures(result, args.figures):
                print(f"bench: figures recorded in {args.figures}", file=sys.stderr)
        except (OSError, UserError) as e:  # the measurement is still worth printing
            print(f"bench: could not record figures in {args.figures}: {e}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


def _benchmark(module: str) -> types.ModuleType:
    """clapsweep.bench.`module`, imported after making `import soundfile` work."""
    use_wave_decoder_if_needed()
    return importlib.import_module(f"clapsweep.bench.{module}")


def _cmd_train(args: argparse.Namespace) -> int:
    train = _benchmark("train")
    profile = None
    if args.profile:
        profile = args.profile_out or _benchmark("real_trainer").default_profile_path()
    return _print(
        train.bench_train(
            config=args.config,
            batch_size=args.batch_size,
            steps=args.steps,
            warmup=args.warmup,
            device=args.device,
            compile=args.compile,
            workers=args.workers,
            cache=args.cache,
            profile_path=profile,
            freeze_text=args.freeze_text,
        ),
        args,
    )


def _cmd_data(args: argparse.Namespace) -> int:
    return _print(
        _benchmark("data").bench_data(
            seconds=args.seconds,
            files=args.files,
            workers=args.workers,
            rates=args.rates,
            target_rate=args.target_rate,
            file_seconds=args.file_seconds,
            batch_size=args.batch_size,
        )
    )


def _cmd_curate(args: argparse.Namespace) -> int:
    return _print(
        _benchmark("curate").bench_curate(
            clips=args.clips,
            captions_n=args.captions,
            dim=args.dim,
            device=args.device,
            sigma=args.sigma,
            chunk=args.chunk,
        )
    )


def _cmd_eval(args: argparse.Namespace) -> int:
    return _print(
        _benchmark("eval").bench_eval(
            config=args.config,
            files=args.files,
            batch_size=args.batch_size,
            workers=args.workers,
            train_batch_size=args.train_batch_size,
            device=args.device,
        ),
        args,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def add_commands(subparsers) -> None:
    """Add `bench` with its four benchmarks to the CLI's subparsers."""
    bench = subparsers.add_parser("bench", help="performance benchmarks (print JSON)")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    device = {"choices": ["cpu", "cuda"], "help": "default: cuda when available"}

    train = sub.add_parser("train", help="training samples/s: model alone, real trainer, plain")
    train.add_argument("--config", choices=["paper", "demo"], default="paper")
    train.add_argument("--batch-size", type=_positive, help="default 64 (paper) on GPU, 2 on CPU")
    train.add_argument("--steps", type=_positive, help="timed steps (rounded to the warm-up)")
    train.add_argument("--warmup", type=_positive, help="untimed steps first (GPU 5, CPU 1-2)")
    train.add_argument("--device", **device)
    train.add_argument("--compile", action="store_true", help="torch.compile (a) and (b)")
    train.add_argument("--workers", type=int, help="DataLoader workers of (b)")
    train.add_argument("--cache", choices=["cold", "warm", "both"], help="AudioCache of (b)")
    train.add_argument(
        "--freeze-text",
        action=argparse.BooleanOptionalAction,
        help="freeze the text tower (default: as the config; the demo sweep may set it)",
    )
    train.add_argument("--profile", action="store_true", help="also profile the real trainer")
    train.add_argument("--profile-out", help="profile file (default $OUT/ or ./bench-profile.txt)")
    _figures_options(train)
    train.set_defaults(handler=_cmd_train)

    data = sub.add_parser("data", help="clips/s of decode + resample + crop per worker count")
    data.add_argument("--seconds", type=float, default=5.0, help="crop length (default 5)")
    data.add_argument("--file-seconds", type=float, default=10.0, help="file length")
    data.add_argument("--files", type=_positive, default=64, help="files per source rate")
    data.add_argument("--workers", type=_int_list, default=[0, 2], help="e.g. 0,2,8")
    data.add_argument("--rates", type=_int_list, default=[48000, 44100, 16000])
    data.add_argument("--target-rate", type=_positive, default=44100)
    data.add_argument("--batch-size", type=_positive, default=16)
    data.set_defaults(handler=_cmd_data)

    cur = sub.add_parser("curate", help="DU curation time and memory against bare products")
    cur.add_argument("--clips", type=_positive, help="default 200000 on GPU, 32768 on CPU")
    cur.add_argument("--captions", type=_positive, help="default 128000 on GPU, 8192 on CPU")
    cur.add_argument("--dim", type=_positive, help="default 1024 on GPU, 512 on CPU")
    cur.add_argument("--sigma", type=float, help="default 4.5 / sqrt(dim)")
    cur.add_argument("--chunk", type=_positive, default=8192)
    cur.add_argument("--device", **device)
    cur.set_defaults(handler=_cmd_curate)

    ev = sub.add_parser("eval", help="embedding throughput against training throughput")
    ev.add_argument("--config", choices=["paper", "demo"], help="default paper on GPU, demo on CPU")
    ev.add_argument("--files", type=_positive)
    ev.add_argument("--batch-size", type=_positive, help="embed_audio batch (windows)")
    ev.add_argument("--workers", type=int, help="embed_audio DataLoader workers")
    ev.add_argument("--train-batch-size", type=_positive)
    ev.add_argument("--device", **device)
    _figures_options(ev)
    ev.set_defaults(handler=_cmd_eval)


def _figures_options(parser: argparse.ArgumentParser) -> None:
    from clapsweep.bench.figures import figures_path

    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--figures",
        default=str(figures_path()),
        metavar="PATH",
        help="also record the figures here for `clapsweep run --dry-run` estimates (default "
        "$CLAPSWEEP_BENCH_FIGURES or runs/bench/figures.json)",
    )
    where.add_argument(
        "--no-figures", dest="figures", action="store_const", const="", help="do not record them"
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m clapsweep.bench train ...`: the bench commands without the main CLI."""
    parser = argparse.ArgumentParser(prog="python -m clapsweep.bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.handler(args)
    except UserError as e:
        print(f"clapsweep: error: {e}", file=sys.stderr)
        return 2
