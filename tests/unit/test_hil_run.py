"""`meter hil run`: the driver suite against a board, and its report."""
from __future__ import annotations

from firmware.cli import main


def test_hil_run_on_the_simulated_board_writes_a_report(tmp_path, capsys):
    out = tmp_path / "hil-report.md"
    assert main(["hil", "run", "--board", "sim", "--output", str(out)]) == 0
    report = out.read_text()
    assert "| `test_stream_is_contiguous_and_stamped` | passed |" in report
    assert "chip: PART_ID" in report and "virtual (simulated chip)" in report
    assert report.rstrip().endswith("7 passed, 0 failed")


def test_hil_run_names_an_unknown_board(tmp_path, capsys):
    assert main(["hil", "run", "--board", "no-such-board", "--output", str(tmp_path / "r.md")]) == 1
    assert "no board file 'no-such-board'" in capsys.readouterr().err
