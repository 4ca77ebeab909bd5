"""The larger fuzz run: every case against every subcommand, totals by family.

    python tests/fuzz/run_fuzz.py                 # every case x every command, in-process
    python tests/fuzz/run_fuzz.py --subprocess    # every run in its own process (peak memory)
    python tests/fuzz/run_fuzz.py --seeds 10      # plus 10 x 20 seeded random byte flips
    python tests/fuzz/run_fuzz.py --examples      # the issue's examples: exit code, stderr line

Prints one line per broken promise and the totals by family (cases, runs, tracebacks,
hangs, wrong exit codes, multi-line exit-2 messages, modified inputs, temp files, partial
outputs, broken output contents, lost outputs of racing runs; the largest peak memory of
the subprocess runs, and of this process, which bounds every in-process run's).  Exit 1 when
anything was found.  ``--examples`` prints a Markdown table instead: each example of the
issue that asked for this suite, with the exit code, the findings (none) and the one stderr
line (sandbox paths shown as ``$SANDBOX``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzzlib  # noqa: E402

KINDS = (
    "traceback",
    "hang",
    "exit",
    "stderr lines",
    "modified input",
    "temp file",
    "partial",
    "content",
    "lost output",
)
#: The order problems are matched in: "exit" last (other problems name the exit code too).
_MATCH_ORDER = (*(k for k in KINDS if k != "exit"), "exit")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subprocess", action="store_true", help="every run in a child process")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of random byte-flip cases")
    ap.add_argument("--family", action="append", help="only these families")
    ap.add_argument("--command", action="append", help="only these subcommands")
    ap.add_argument("-v", action="store_true", help="print every run")
    ap.add_argument("--examples", action="store_true", help="the issue's examples as a table")
    args = ap.parse_args(argv)
    if args.examples:
        return _examples()
    cases = fuzzlib.all_cases()
    for seed in range(args.seeds):
        cases += fuzzlib.random_byte_cases(seed, 20)
    if args.family:
        cases = [c for c in cases if c.family in args.family]
    totals = defaultdict(lambda: defaultdict(int))
    peaks: list[int] = []
    with tempfile.TemporaryDirectory(prefix="rtplan-fuzz-") as tmp:
        Path(tmp).chmod(0o777)
        template = fuzzlib.Template(Path(tmp))
        try:
            _run_all(args, cases, template, totals, peaks)
        except KeyboardInterrupt:  # e.g. `timeout -s INT`: report what ran
            print("interrupted: totals of the cases run so far", flush=True)
    peak = max(peaks, default=0)
    return _report(totals, peak)


def _run_all(args, cases, template, totals, peaks) -> None:
    for case in cases:
        commands = [c for c in case.commands if not args.command or c in args.command]
        runs = fuzzlib.run_case(template, case, tuple(commands), subprocess_all=args.subprocess)
        t = totals[case.family]
        t["cases"] += 1
        for run in runs:
            t["runs"] += 1
            peaks.append(run.peak_bytes or 0)
            for problem in run.problems:
                kind = next((k for k in _MATCH_ORDER if k in problem), problem)
                t[kind] += 1
                last = run.stderr.strip().splitlines()[-1:] if run.stderr.strip() else [""]
                print(
                    f"FAIL [{case.family}] {case.name} / {run.command}: {problem} "
                    f"(exit {run.code}; {last[0][:200]})",
                    flush=True,
                )
            if args.v:
                line = (run.stderr.strip().splitlines() or [""])[0]
                print(
                    f"  [{case.family}] {case.name} / {run.command}: exit {run.code} "
                    f"{run.seconds:.1f}s {line[:160]}",
                    flush=True,
                )


def _report(totals, peak) -> int:
    print(f"\n{'family':<13} {'cases':>5} {'runs':>5} " + " ".join(f"{k:>14}" for k in KINDS))
    bad = 0
    for family, t in totals.items():
        print(
            f"{family:<13} {t['cases']:>5} {t['runs']:>5} " + " ".join(f"{t[k]:>14}" for k in KINDS)
        )
        bad += sum(t[k] for k in t if k not in ("cases", "runs"))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"largest peak memory: subprocess runs {peak / 2**20:.0f} MiB; this process (bounds "
          f"every in-process run) {own / 2**20:.0f} MiB")  # fmt: skip
    return 1 if bad else 0


def _examples() -> int:
    """Run :data:`fuzzlib.EXAMPLES`; print one Markdown row per run."""
    print("| example | case | command | exit | findings | stderr (last line) |")
    print("|---|---|---|---|---|---|")
    bad = 0
    with tempfile.TemporaryDirectory(prefix="rtplan-fuzz-") as tmp:
        Path(tmp).chmod(0o777)
        template = fuzzlib.Template(Path(tmp))
        for label, case, command in fuzzlib.examples():
            for run in fuzzlib.run_case(template, case, (command,)):
                bad += len(run.problems)
                lines = run.stderr.strip().splitlines() or ["(nothing)"]
                line = lines[-1].replace(tmp, "$SANDBOX").replace("|", "\\|")
                line = line if len(line) <= 220 else line[:217] + "..."
                findings = "; ".join(run.problems) or "none"
                print(f"| {label} | {case.name.replace('|', '/')} | {command} | {run.code} | "
                      f"{findings} | {line} |", flush=True)  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
