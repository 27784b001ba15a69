"""Time dataset_fingerprint against the number of files in a dataset folder.

Builds one synthetic dataset under a scratch folder (default: a new folder in /tmp): N audio-like
files of a few bytes each, spread over subfolders of 1000 files like real datasets, plus a metadata
CSV of N lines. N grows 10x per step (1 000, 10 000, ... up to --max); each step adds files to the
same tree. For each N it times a first run right after the files were written, then the best of
--repeat warm runs, and prints N, seconds and files/s. The scratch folder is deleted at the end.

The first run is only "cold-ish": the kernel still caches the inodes it just wrote. With
--drop-caches (root only, Linux) the dentry and inode caches are dropped before it, which is what
a first fingerprint after a reboot or on a freshly mounted disk sees.

    .venv/bin/python scripts/bench_fingerprint.py              # up to 100 000 files, ~10 s
    .venv/bin/python scripts/bench_fingerprint.py --max 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from clapsweep.data.fingerprint import dataset_fingerprint

PER_FOLDER = 1000


def grow(folder: Path, start: int, stop: int) -> None:
    """Write files start..stop-1 (a few bytes each) into folders of PER_FOLDER, and the CSV."""
    for i in range(start, stop):
        sub = folder / "audio" / f"part{i // PER_FOLDER:05d}"
        if i % PER_FOLDER == 0:
            sub.mkdir(parents=True, exist_ok=True)
        with open(sub / f"clip{i:08d}.wav", "wb") as f:
            f.write(b"RIFF%d" % (i % 97))
    meta = folder / "meta" / "labels.csv"
    meta.parent.mkdir(parents=True, exist_ok=True)
    with open(meta, "w") as f:
        f.write("filename,label\n")
        f.writelines(
            f"part{i // PER_FOLDER:05d}/clip{i:08d}.wav,label{i % 50}\n" for i in range(stop)
        )


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")  # dentries and inodes; the page cache of other files is kept
        return True
    except OSError:
        return False


def timed(folder: Path) -> float:
    t = time.perf_counter()
    dataset_fingerprint(folder)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=100_000, help="largest N (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per N (default 3)")
    parser.add_argument("--dir", default=None, help="scratch parent folder (default: /tmp)")
    parser.add_argument(
        "--drop-caches", action="store_true", help="drop dentry/inode caches before first run"
    )
    args = parser.parse_args()

    sizes = []
    n = 1000
    while n <= args.max:
        sizes.append(n)
        n *= 10
    if not sizes or sizes[-1] != args.max:
        sizes.append(args.max)

    scratch = Path(tempfile.mkdtemp(prefix="bench-fingerprint-", dir=args.dir or "/tmp"))
    folder = scratch / "dataset"
    first_kind = "first"
    print(
        f"scratch folder {scratch}; {PER_FOLDER} files per subfolder; + 1 metadata CSV of N lines"
    )
    print(f"{'N':>9} {'write s':>8} {first_kind + ' s':>8} {'warm s':>8} {'files/s':>10}")
    try:
        done = 0
        for n in sizes:
            t = time.perf_counter()
            grow(folder, done, n)
            written = time.perf_counter() - t
            done = n
            dropped = args.drop_caches and drop_caches()
            first = timed(folder)
            warm = min(timed(folder) for _ in range(max(1, args.repeat)))
            mark = " (caches dropped)" if dropped else ""
            print(f"{n:>9} {written:>8.2f} {first:>8.3f} {warm:>8.3f} {n / warm:>10.0f}{mark}")
        rate = sizes[-1] / warm
        print(f"extrapolated to 2 000 000 files at the largest N's warm rate: {2e6 / rate:.1f} s")
    finally:
        t = time.perf_counter()
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"deleted {scratch} in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
