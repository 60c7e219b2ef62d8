"""`dativo ... | head`: a reader that stops early is not an error of the command."""

from __future__ import annotations

import subprocess

from tests.conftest import BIN


def test_a_closed_stdout_ends_the_command_quietly_as_sigpipe_would() -> None:
    command = subprocess.Popen([str(BIN / "dativo"), "keys", "new"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert command.stdout is not None and command.stderr is not None
    command.stdout.close()  # before the command writes its key
    stderr = command.stderr.read()
    command.stderr.close()
    assert command.wait(timeout=60) == 141
    assert stderr == b""
