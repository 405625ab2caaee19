"""Differential fuzzing of mlc: random valid ONNX graphs, compiled at -O3, against onnxruntime.

    python benchmarks/fuzz.py --minutes 10                          # both targets, seeds from 0
    python benchmarks/fuzz.py --minutes 30 --seed-start 5000 --targets llvm --json
    python benchmarks/fuzz.py --seed 53 --target llvm               # reproduce one seed (minimized, saved)
    python benchmarks/fuzz.py --minutes 10 --avoid unit-reduction   # stay away from a known, open bug

Each seed is a graph from `mlc.fuzzing.generate` (deterministic), proved valid (onnx checker with
strict shape inference, onnxruntime runs it with finite outputs) or skipped and counted; then
`mlc.compile(model, target, level=3, verify="none")` per target, the artifact run on the case's
feeds and compared with onnxruntime (graph optimizations off) on the original model. Verdicts: ok,
mismatch, crash (exit 70, any other exception, a failing artifact run, a signal death or hang of
the worker process), refusal (a clean exit 2/3, grouped by message), invalid. A mismatch or crash
prints its seed and a one-line reproducer, is minimized by delta debugging over its nodes and is
saved under --out (default: a new temporary folder, never the checkout). CPU seconds count the
worker process and its children (TVM builds in a grandchild) plus this process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from mlc.fuzzing.campaign import Settings, Summary, run_campaign
from mlc.fuzzing.known_bugs import KNOWN_BUGS


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="wall-clock budget (default 1)")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--seed", type=int, help="run this one seed only (a reproducer)")
    parser.add_argument("--targets", "--target", default="onnxruntime,llvm",
                        help="comma-separated targets (default onnxruntime,llvm)")
    parser.add_argument("--out", type=Path, help="folder for failing cases (default: a new temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--level", type=int, default=3, choices=range(4), help="optimization level (default 3)")
    parser.add_argument("--verify", default="none", choices=("none", "final", "each"),
                        help="mlc's own numeric check at compile time (default none: the fuzzer judges)")
    parser.add_argument("--avoid", default="", help=f"known bugs to avoid: {', '.join(sorted(KNOWN_BUGS))}")
    parser.add_argument("--no-minimize", action="store_true", help="save failing cases without minimizing")
    parser.add_argument("--minimize-refusals", action="store_true", help="minimize refusals of valid models too")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one compile and run may take")
    return parser.parse_args(argv)


def _print(summary: Summary, settings: Settings, out: Path) -> None:
    print(f"seeds {summary.seeds} ({summary.first_seed}..{summary.last_seed}), valid {summary.valid}, "
          f"skipped {sum(summary.skipped.values())}; wall {summary.wall_seconds / 60:.1f} min, "
          f"CPU {summary.cpu_seconds / 60:.1f} min")
    for reason, count in summary.skipped.most_common(5):
        print(f"  skipped {count}: {reason}")
    for target in settings.targets:
        counts = summary.verdicts.get(target, {})
        line = ", ".join(f"{kind} {counts.get(kind, 0)}" for kind in ("ok", "mismatch", "crash", "refusal", "invalid"))
        print(f"{target}: {line}")
        for message, count in summary.refusals.get(target, Counter()).most_common():
            seeds = summary.refusal_seeds.get(target, {}).get(message, [])
            print(f"  refusal {count} (seeds {', '.join(map(str, seeds))}): {message}")
    for failure in summary.failures:
        nodes = f"{failure.nodes} nodes" + (f" -> {failure.minimized_nodes}" if failure.minimized_nodes else "")
        print(f"FAIL seed {failure.seed} {failure.target} {failure.verdict['kind']} ({nodes}): "
              f"{failure.verdict['detail'][:200]}\n  {failure.reproducer()}")
    if summary.failures:
        print(f"cases saved under {out}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    avoid = frozenset(a.strip() for a in args.avoid.split(",") if a.strip())
    unknown = sorted(avoid - set(KNOWN_BUGS))
    if unknown:
        print(f"fuzz.py: error: --avoid {unknown[0]}: not a known bug ({', '.join(sorted(KNOWN_BUGS))})",
              file=sys.stderr)
        return 2
    settings = Settings(targets=tuple(t.strip() for t in args.targets.split(",") if t.strip()), level=args.level,
                        verify=args.verify, avoid=avoid, minimize=not args.no_minimize,
                        minimize_refusals=args.minimize_refusals, timeout=args.timeout)
    out = args.out or Path(tempfile.mkdtemp(prefix="mlc-fuzz-"))
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else \
        (lambda text: print(text, flush=True))
    if args.seed is not None:
        summary = run_campaign([args.seed], settings, out, log=log)
    else:
        deadline = time.monotonic() + args.minutes * 60
        summary = run_campaign(range(args.seed_start, 2 ** 31), settings, out, deadline=deadline, log=log)
    if args.json:
        print(json.dumps({**summary.to_json(), "targets": list(settings.targets), "level": settings.level,
                          "avoid": sorted(avoid), "out": str(out)}, indent=2))
    else:
        _print(summary, settings, out)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
