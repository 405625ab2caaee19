"""`python -m tests.hostile.report [--jobs N] [--case ID ...] [--command C ...] [--json FILE]`:
run the hostile corpus through mlc and print the counts by command and verdict, then every
(case, command) that broke the contract with the rule it broke."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.hostile.corpus import ARTIFACT, ARTIFACT_COMMANDS, BY_ID, CASES, COMMANDS, MODEL
from tests.hostile.harness import Outcome, failures, judge, run_corpus, save, strace_unavailable, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile.report", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--case", action="append", default=[], metavar="ID", help="only these cases (repeatable)")
    parser.add_argument("--group", action="append", default=[], help="only these groups (repeatable)")
    parser.add_argument("--command", action="append", default=[],
                        choices=sorted(set(COMMANDS) | set(ARTIFACT_COMMANDS)), help="only these commands")
    parser.add_argument("--no-trace", action="store_true", help="skip strace (no check of reads outside)")
    parser.add_argument("--json", metavar="FILE", help="write every outcome as JSON")
    parser.add_argument("--keep", metavar="DIR", help="write the cases here (kept) instead of a temporary folder")
    parser.add_argument("--mlc-path", metavar="DIR",
                        help="run the mlc package in DIR/mlc (e.g. an older checkout's compiler/ copied there, with "
                             "passes/ and backends/ inside) instead of the installed one")
    parser.add_argument("--rejudge", metavar="FILE.json",
                        help="judge the outcomes saved by an earlier --json run again, by the corpus as it is now "
                             "(nothing runs), and print the table")
    args = parser.parse_args(argv)
    if args.rejudge:
        return _rejudge(Path(args.rejudge))
    unknown = [c for c in args.case if c not in BY_ID]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    cases = [c for c in CASES if (not args.case or c.id in args.case) and (not args.group or c.group in args.group)]
    why = "tracing turned off" if args.no_trace else strace_unavailable()
    print(f"{len(cases)} cases ({sum(c.artifact for c in cases)} tampered artifacts); reads outside the folder: "
          + ("checked with strace" if not why else f"NOT checked ({why})"), file=sys.stderr)
    started = time.perf_counter()
    done = 0

    def progress(o: Outcome) -> None:
        nonlocal done
        done += 1
        mark = "" if o.verdict in ("ok", "skipped") else f"  <- {o.verdict}: {o.detail[:120]}"
        print(f"[{done}] {o.case} {o.command} exit {o.exit} {o.seconds:.1f}s {o.max_rss_mb:.0f}MB{mark}",
              file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="mlc-hostile-") as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        outcomes = run_corpus(root, cases, args.command or None, jobs=args.jobs, trace=not args.no_trace,
                              progress=progress, mlc_path=args.mlc_path)
    print(table(outcomes))
    slowest = max(outcomes, key=lambda o: o.seconds, default=None)
    heaviest = max(outcomes, key=lambda o: o.max_rss_mb, default=None)
    if slowest is not None and heaviest is not None:
        print(f"\n{len(outcomes)} runs in {time.perf_counter() - started:.0f} s; slowest {slowest.seconds:.1f} s "
              f"({slowest.case} {slowest.command}); peak memory {heaviest.max_rss_mb:.0f} MB "
              f"({heaviest.case} {heaviest.command})")
    broken = failures(outcomes)
    if broken:
        print("\n" + broken)
    if args.json:
        save(outcomes, Path(args.json))
    return 0 if not broken else 1


def _rejudge(path: Path) -> int:
    outcomes = [Outcome(**{k: v for k, v in item.items()}) for item in json.loads(path.read_text())]
    for o in outcomes:
        c = BY_ID.get(o.case)
        if c is not None and o.verdict != "skipped" and o.argv:
            judge(c, o, Path(ARTIFACT if c.artifact else MODEL))
    print(table(outcomes))
    broken = failures(outcomes)
    if broken:
        print("\n" + broken)
    return 0 if not broken else 1


if __name__ == "__main__":
    sys.exit(main())
