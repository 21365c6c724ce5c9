"""Tables for papers: Markdown and LaTeX (booktabs) files, every quoted string escaped.

Arm, benchmark and suite names come from suite files, so a `_`, `*` or `|` in them must print as
itself: Markdown gets backslash escapes (and `<`, `&` as entities, so no name becomes HTML);
LaTeX gets its ten special characters and `<`, `>`, `|` as text commands.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.analysis.results import Parity
from harness.report.tables import eval_table, headline_table, lengths_table
from harness.store import atomic_write_text

_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links, cells, strikethrough


def markdown_escape(text: str) -> str:
    """A string that GitHub-flavoured Markdown shows literally inside a table cell."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", " ".join(text.splitlines()))


def to_markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(map(markdown_escape, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(markdown_escape, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "|": r"\textbar{}", "\n": " "}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(headers: list[str], rows: list[list[str]], caption: str, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    spec = "ll" + "r" * (len(headers) - 2)
    body = [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{latex_escape(label)}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", r"\end{table}", "",
    ])  # fmt: skip


def write_tables(parity: Parity, out_dir: Path) -> list[Path]:
    """headline, eval and eval-lengths tables as .md and .tex under out_dir; returns the paths written."""
    suite = parity.suite
    emulated = " FP8 is emulated (numerics only: no speed or memory claim)." if parity.emulated else ""
    paths = []
    for name, table, caption in (
        ("headline", headline_table(parity), f"FP8 vs BF16 on suite {suite}: cost and scores.{emulated}"),
        ("eval", eval_table(parity), f"Evaluation deltas (FP8 - BF16, avg@k points) on suite {suite}.{emulated}"),
        ("eval-lengths", lengths_table(parity), f"Output lengths and evaluation cost (BF16 / FP8) on suite {suite}."),
    ):
        rows = table.text_rows()
        for ext, text in (("md", to_markdown(table.headers, rows)),
                          ("tex", to_latex(table.headers, rows, caption, f"tab:{name}"))):  # fmt: skip
            path = out_dir / f"{name}.{ext}"
            atomic_write_text(path, text)
            paths.append(path)
    return paths
