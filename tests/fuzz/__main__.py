"""Run one fuzz target under atheris (libFuzzer): `python -m tests.fuzz TARGET [options]`.

    python -m tests.fuzz mime --seconds 600        # explore for ten minutes
    python -m tests.fuzz csv --runs 5000 --seed 1  # a fixed, repeatable run (the tests do this)
    python -m tests.fuzz mime --replay FILE...     # run the target once on each file

New inputs that reach new code go to --work (a temporary folder unless given); seeds are read
from the target's seed folders and never written. A failing input is saved as
<work>/crash-<sha1> and the exit status is non-zero: copy it into tests/fuzz/regressions/<target>/
so that every later test run replays it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT / "tests" / "data"

# Where each target's seeds come from: the project's own fixtures, and the inputs that once
# failed (tests/fuzz/regressions/<target>/, replayed by every test run).
SEEDS: dict[str, list[Path]] = {
    "mime": [DATA / "mail"],
    "html": [DATA / "mail", HERE / "seeds" / "html"],
    "insert": [DATA / "mail"],
    "dkim": [DATA / "mail"],
    "csv": [DATA / "consent"],
    "address": [HERE / "seeds" / "address"],
    "config": [ROOT / "deploy"],
    "dmarc": [HERE / "seeds" / "dmarc"],
    "token": [HERE / "seeds" / "token"],
    "headers": [DATA / "mail"],
    "mailto": [HERE / "seeds" / "token", HERE / "seeds" / "reports", DATA / "mail"],
    "data": [DATA / "mail"],
    "dkim_verify": [HERE / "seeds" / "dkim_verify"],
}
NOT_INPUTS = ("cases.toml",)  # the corpus's own index, beside the mail it describes


def seed_dirs(target: str) -> list[Path]:
    dirs = [*SEEDS[target], HERE / "regressions" / target]
    return [d for d in dirs if d.is_dir()]


def seed_files(target: str) -> list[Path]:
    return sorted(p for d in seed_dirs(target) for p in d.iterdir()
                  if p.is_file() and not p.name.endswith(".py") and p.name not in NOT_INPUTS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=sorted(SEEDS))
    ap.add_argument("--seconds", type=int, default=0, help="stop after this long (0: no limit)")
    ap.add_argument("--runs", type=int, default=0, help="stop after this many inputs (0: no limit)")
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer's random seed (0: random)")
    ap.add_argument("--max-len", type=int, default=16384, help="longest input tried (bytes)")
    ap.add_argument("--work", type=Path, help="folder for new inputs and crash files")
    ap.add_argument("--replay", nargs="+", type=Path, metavar="FILE",
                    help="run the target once on each file instead of fuzzing")
    args = ap.parse_args(argv)

    import atheris

    with atheris.instrument_imports(include=["gateway"]):
        from tests.fuzz.targets import TARGETS
    target = TARGETS[args.target]

    if args.replay:
        for path in args.replay:
            target(path.read_bytes())
            print(f"{path}: ok")
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix=f"tokuden-fuzz-{args.target}-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    flags = [f"-max_len={args.max_len}", f"-artifact_prefix={work}/", "-print_final_stats=1",
             "-timeout=20", "-rss_limit_mb=2048"]
    if args.seconds:
        flags.append(f"-max_total_time={args.seconds}")
    if args.runs:
        flags.append(f"-runs={args.runs}")
    if args.seed:
        flags.append(f"-seed={args.seed}")
    # libFuzzer writes new inputs into the first folder only: the seeds stay as they are.
    folders = [str(corpus), *(str(d) for d in seed_dirs(args.target))]
    print(f"fuzzing {args.target}: new inputs and crashes in {work}", file=sys.stderr)
    atheris.Setup([sys.argv[0], *flags, *folders], target)
    atheris.Fuzz()
    return 0  # not reached: libFuzzer exits the process


if __name__ == "__main__":
    sys.exit(main())
