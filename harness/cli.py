"""The `harness` command: a table of sub-commands, each configured by the module that owns it.

Only the chosen command's module is imported, so `harness validate` stays fast and torch-free.
Errors derived from HarnessError print one line and exit with their code (2 by default);
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from harness import __version__
from harness.errors import HarnessError, NotAvailable, Stopped, Terminated

# name -> ("module:configure", one-line help). configure(parser) adds arguments, returns main(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("harness.pipeline:configure_validate", "check a suite; print field-level errors"),
    "plan": ("harness.pipeline:configure_plan", "print the matrix of runs a suite expands to"),
    "run": ("harness.pipeline:configure_run", "train every arm, evaluate, compare, report, gate"),
    "train": ("harness.pipeline:configure_train", "train one run of a suite (what launchers call on every rank)"),
    "eval": ("harness.eval.cli:configure_eval", "evaluate a run directory or checkpoint on benchmarks"),
    "data": ("harness.eval.cli:configure_data", "export a hub benchmark to the offline layout (needs network)"),
    "compare": ("harness.analysis.cli:configure_compare", "pair arms of a suite's runs, write parity.json"),
    "report": ("harness.report.cli:configure_report", "render the HTML report, figures and tables"),
    "gate": ("harness.gate:configure_gate", "check parity against thresholds; exit 0 pass, 1 fail, 2 no data"),
    "history": ("harness.analysis.cli:configure_history", "trend of speed-up, memory and scores across commits"),
    "import": ("harness.analysis.cli:configure_import", "turn TensorBoard events or a Megatron log into a run dir"),
    "launch": ("harness.launch:configure_launch", "run a suite under torchrun, two nodes or Slurm"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="FP8 parity harness: matched BF16/FP8 training, evaluation, reports and gates.",
        epilog="Run `harness COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    return parser


def _load_configure(target: str):
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            return None
        raise
    return getattr(module, attr, None)


def _raise_terminated(signum, frame):
    raise Terminated(signal.Signals(signum).name)


# SIGUSR1 asks a training run to stop after its step with a checkpoint (harness/train/trainer.py, relayed
# by `harness run` and `harness launch`); anywhere else it stops the command like SIGTERM (Python's
# default would kill it without stopping its vLLM servers), but exits 138 (stopped, resumable).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def main(argv: list[str] | None = None) -> int:
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in STOP_SIGNALS} if on_main_thread else {}
    try:
        return _main(argv)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def _main(argv: list[str] | None) -> int:
    # Hugging Face's own bars ("Loading weights", "Writing model shards") would interleave with the
    # harness's progress lines; read by huggingface_hub and transformers when first imported, and
    # inherited by the `harness train` children. HF_HUB_DISABLE_PROGRESS_BARS=0 brings them back.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0].startswith("-") or argv[0] not in COMMANDS:
        parser = _top_parser()
        if not argv:
            parser.print_help()
            return 2
        try:
            parser.parse_args(argv)  # prints help/version (exit 0) or a usage error (exit 2)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 2
    name = argv[0]
    target, help_text = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"harness {name}", description=help_text)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    try:
        configure = _load_configure(target)
        if configure is None:
            raise NotAvailable(f"harness {name}: not available yet in harness {__version__}")
        command = configure(parser)
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit as exc:  # --help or a usage error, already printed by argparse
            return int(exc.code or 0)
        return int(command(args) or 0)
    except HarnessError as exc:
        if debug:
            raise
        print(f"harness {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated) and exc.args[:1] == ("SIGUSR1",):
            # Outside a training step (e.g. evaluating): stopped at once, what finished is kept, and
            # exit 138 as for a stopped run, so a batch script requeues it like one.
            print(f"harness {name}: stopped (SIGUSR1); run the same command again to resume", file=sys.stderr)
            return Stopped.exit_code
        terminated = isinstance(exc, Terminated)
        how = f"terminated ({exc.args[0] if exc.args else 'SIGTERM'})" if terminated else "interrupted"
        print(f"harness {name}: {how}", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130


if __name__ == "__main__":
    sys.exit(main())
