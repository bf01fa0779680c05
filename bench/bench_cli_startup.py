"""Start-up of the command line: ``airlock --help`` and friends beside the interpreter's own start-up.

    .venv/bin/python bench/bench_cli_startup.py [--repeat 15] [--warmup 2]

Times, as whole processes (wall clock, from spawn to exit), in turn round by round so that a drift
of the machine's speed touches every command alike:

* ``python -c pass``: the interpreter's own start-up, the floor no command can go under;
* for reference, what the framework alone costs: a minimal Typer app's (one group of one command)
  ``--help`` and ``plan --help`` (stock Typer 0.29 loads pydantic for the second), ``airlock
  --help`` with Typer's plain help instead of its Rich panels (``TYPER_USE_RICH=0``), and a
  minimal click app's ``--help``;
* ``airlock --help``, ``airlock plan --help`` and ``airlock plan list --help`` (goal: each under
  0.3 s, issue 10);
* ``airlock plan list`` on an empty, initialised workspace: a real command, which must load the
  database layer.

Bytecode caching is on for every run, as in any installation (``PYTHONDONTWRITEBYTECODE`` is
dropped from the environment, so the warm-up rounds write the ``.pyc`` files); without it each
run would compile every module of Airlock that changed since its last cached copy.

Prints each command's median and range over ``--repeat`` rounds (after ``--warmup`` rounds not
counted), its ratio to the interpreter's median, whether the goal is met, and which heavy modules
(SQLAlchemy, pydantic, FastAPI, uvicorn, rich.progress, the workspace, the sandbox) ``airlock
--help`` loaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 0.3
HEAVY = (
    "sqlalchemy",
    "pydantic",
    "fastapi",
    "uvicorn",
    "rich.progress",
    "airlock.workspace",
    "airlock.db",
    "airlock.sandbox",
)
# Runs the CLI's own entry point in-process, then prints the heavy modules it loaded.
PROBE = (
    "import sys\n"
    "sys.argv = ['airlock', *sys.argv[1:]]\n"
    "from airlock.cli import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit:\n"
    "    pass\n"
    f"heavy = {HEAVY!r}\n"
    "found = sorted({m for m in sys.modules for h in heavy if m == h or m.startswith(h + '.')})\n"
    "print(' '.join(n for n in found if '.' not in n or n in heavy) or '-', file=sys.stderr)\n"
)


MINIMAL_TYPER = """
import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)
plan = typer.Typer(help="Plans.")
app.add_typer(plan, name="plan")


@plan.command("list")
def plan_list(workspace: str = "") -> None:
    \"\"\"List plans.\"\"\"


app()
"""


MINIMAL_CLICK = """
import click


@click.group()
def cli() -> None:
    \"\"\"Plans.\"\"\"


@cli.command("list")
@click.option("--workspace", default="")
def plan_list(workspace: str) -> None:
    \"\"\"List plans.\"\"\"


cli()
"""


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def airlock_command() -> list[str]:
    """The installed ``airlock`` script beside this interpreter, else ``python -m airlock``."""
    script = Path(sys.executable).parent / "airlock"
    return [str(script)] if script.exists() else [sys.executable, "-m", "airlock"]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def heavy_modules(args: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=ENV, check=False
    )
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    airlock = airlock_command()
    with tempfile.TemporaryDirectory(prefix="airlock-bench-cli-") as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        subprocess.run(
            [*airlock, "init", "--workspace", str(root)], capture_output=True, env=ENV, check=True
        )
        minimal = Path(tmp) / "minimal_typer.py"
        minimal.write_text(MINIMAL_TYPER)
        minimal_click = Path(tmp) / "minimal_click.py"
        minimal_click.write_text(MINIMAL_CLICK)
        plain = ["env", "TYPER_USE_RICH=0", *airlock]
        py = sys.executable
        commands: dict[str, tuple[list[str], bool]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], False),
            "ref: minimal Typer --help": ([py, str(minimal), "--help"], False),
            "ref: minimal Typer plan --help": ([py, str(minimal), "plan", "--help"], False),
            "ref: --help, Typer plain help": ([*plain, "--help"], False),
            "ref: minimal click --help": ([py, str(minimal_click), "--help"], False),
            "airlock --help": ([*airlock, "--help"], True),
            "airlock plan --help": ([*airlock, "plan", "--help"], True),
            "airlock plan list --help": ([*airlock, "plan", "list", "--help"], True),
            "airlock plan list (empty ws)": ([*airlock, "plan", "list", "-w", str(root)], False),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.warmup + args.repeat):
            for name, (argv, _) in commands.items():
                elapsed = wall(argv)
                if round_ >= args.warmup:
                    times[name].append(elapsed)
        loaded = {
            "--help": heavy_modules(["--help"]),
            "plan --help": heavy_modules(["plan", "--help"]),
            "plan list --help": heavy_modules(["plan", "list", "--help"]),
        }
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"# {' '.join(airlock)}; {os.cpu_count()} cores, load average {load}; "
        f"medians of {args.repeat} round(s) after {args.warmup} warm-up round(s), wall clock"
    )
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<30} {'median':>8} {'min':>8} {'max':>8} {'x python':>9}  goal < {GOAL_S} s")
    met_all = True
    for name, (_, goal) in commands.items():
        median = statistics.median(times[name])
        verdict = ""
        if goal:
            met = median < GOAL_S
            met_all = met_all and met
            verdict = "met" if met else "NOT MET"
        print(
            f"{name:<30} {median:>6.3f} s {min(times[name]):>6.3f} s {max(times[name]):>6.3f} s "
            f"{median / floor:>9.2f}  {verdict}"
        )
    for what, modules in loaded.items():
        print(f"heavy modules loaded by `airlock {what}`: {modules}")
    print(f"goal: every --help under {GOAL_S} s: {'MET' if met_all else 'NOT MET'}")


if __name__ == "__main__":
    main()
