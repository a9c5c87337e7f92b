"""`omnicoach eval all`: every evaluation into one markdown report with PNG plots; a section
that fails is reported with its error and the others still run. Real models (Whisper, Piper,
the shipped router) on the quick subsets; the pretraining comparison read from reports/."""

import json
import re
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from omnicoach import cli
from omnicoach.evaluation import report

FIGURE = re.compile(r"!\[[^\]]*\]\(([^)]+\.png)\)")


def eval_all(*args: str):
    return CliRunner().invoke(cli.app, ["eval", "all", *args])


@pytest.mark.slow
def test_a_quick_report_has_its_summary_plots_and_the_failed_section(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("the fine-tune evaluation fell over")

    # sft runs between the real sections: the ones after it must still run.
    monkeypatch.setitem(report.SECTIONS, "sft", replace(report.SECTIONS["sft"], run=broken))
    out = tmp_path / "latest"
    result = eval_all(
        "--quick", "--only", "wer,router,sft,pretrain", "--out", str(out), "--threads", "1"
    )
    assert result.exit_code == 1, result.output
    text = (out / "README.md").read_text()

    assert "QUICK smoke run" in text and text.startswith("# Evaluation report — QUICK")
    assert "| section | metric | value | held-out set | source | time | reproduce |" in text
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    sections = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    assert sections == ["wer", "wer", "router", "router", "sft", "pretrain", "pretrain"], rows
    # The failure: in the summary and as its own section with the traceback.
    assert "| sft | — | **failed**: RuntimeError: the fine-tune evaluation fell over |" in text
    assert "**Failed** after" in text and "raise RuntimeError(" in text
    # Measured now, on quick subsets, and labelled so; the pretraining read from its report.
    router_row = next(r for r in rows if r.startswith("| router | router accuracy"))
    assert re.search(r"\| \d+\.\d\d% \(quick\) \|", router_row) and "rerun, QUICK" in router_row
    assert re.search(r"\| pretrain \| .*from reports/pretrain \(\d{4}-\d\d-\d\d\)", text)
    scores = json.loads((out / "router" / "results.json").read_text())["scores"]
    assert scores["examples"] == 60 and scores["accuracy"] >= 0.85  # shipped: 97.5 % of 285
    heard = json.loads((out / "wer" / "results.json").read_text())
    assert len(heard) == 3 and all(row["espeak-ng"]["wer"] <= 0.5 for row in heard), heard

    figures = FIGURE.findall(text)
    expected = {"wer/wer.png", "router/confusion.png", "router/models.png", "pretrain/loss.png"}
    assert expected <= set(figures), figures
    for figure in figures:
        assert (out / figure).read_bytes().startswith(b"\x89PNG"), figure
    assert not (out / "sft").exists()  # nothing half-written stays behind


def test_plain_eval_runs_every_section_into_reports_latest(monkeypatch):
    calls = []

    def fake_run_report(names, out, **options):
        calls.append((names, out, options))
        return []

    monkeypatch.setattr(report, "run_report", fake_run_report)
    result = CliRunner().invoke(cli.app, ["eval"])
    assert result.exit_code == 0, result.output
    [(names, out, options)] = calls
    assert names == list(report.SECTIONS) and str(out) == "reports/latest"
    assert options["reuse"] == {"pretrain"} and options["quick"] is False

    calls.clear()
    result = eval_all("--quick", "--skip", "sft,imagegen", "--rerun", "pretrain")
    assert result.exit_code == 0, result.output
    [(names, out, options)] = calls
    assert (
        names == ["wer", "spoken-names", "router", "facts", "vlm", "pretrain"]
        and options["reuse"] == set()
    )
    assert str(out) == "var/eval-quick"  # quick figures never land in reports/latest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "router,bleu"], "unknown section bleu"),
        (["--skip", "wer,spoken-names,router,sft,facts,vlm,imagegen,pretrain"], "no section left"),
        (["--reuse", "wer"], "wer has no report to read"),
        (["--only", "pretrain", "--out", str(report.REPORTS)], "would overwrite"),
        (["--only", "pretrain", "--out", str(report.REPORTS / "sft")], "would overwrite"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(args, message):
    result = eval_all(*args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split()), result.output
