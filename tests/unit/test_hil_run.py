"""`meter hil run`: the driver suite against a board, and its report."""
from __future__ import annotations

from firmware.cli import main
from firmware.cli.hil_run import this_board


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


def test_the_board_is_the_one_the_kernel_command_line_names(tmp_path, monkeypatch):
    # the emulated image boots with openmeter.board=qemu-virt (its simulated chip); meter.service reads it there
    monkeypatch.delenv("METER_BOARD", raising=False)
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=ttyAMA0 root=LABEL=root spidev.bufsiz=8192 openmeter.board=qemu-virt rootwait\n")
    assert this_board(cmdline) == "qemu-virt"
    cmdline.write_text("console=tty0 root=LABEL=root spidev.bufsiz=8192\n")
    assert this_board(cmdline) == "cm4-ade9000"
    monkeypatch.setenv("METER_BOARD", "sim")
    assert this_board(cmdline) == "sim"
