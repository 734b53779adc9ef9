"""The CLI's contract: --help everywhere, and errors as one line with a non-zero exit."""

import subprocess
import sys

import pytest

from dnncomp.cli import app, main


def _commands():
    return sorted(app.commands)


def test_every_command_has_help(capsys):
    assert main(["--help"]) == 0
    for name in _commands():
        assert main([name, "--help"]) == 0, name
    out = capsys.readouterr().out
    assert "Usage:" in out


def test_library_error_is_one_line_without_traceback(tmp_path):
    """A bad input must end in one line on stderr and exit code 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "dnncomp.cli", "run", "mnist", "--model", "no-such-model", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "no-such-model" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["no-such-command"], ["run"]])
def test_usage_errors_exit_non_zero(argv):
    assert main(argv) == 2


def test_unknown_recipe_fails_before_any_training(tmp_path, capsys):
    assert main(["run", "mnist", "--techniques", "float,no-such-recipe", "--out", str(tmp_path)]) == 2
    assert "no-such-recipe" in capsys.readouterr().err
    assert not (tmp_path / "mnist").exists()
