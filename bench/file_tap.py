"""A stand-in tap for the Meltano benchmark run: copy a Singer message file to stdout.

Usage: ``python bench/file_tap.py MESSAGES.jsonl [tap args ignored]``. Meltano passes
``--config``/``--state`` style arguments; they are ignored. ``--discover`` prints an
empty catalog so a discovery attempt cannot fail.
"""

from __future__ import annotations

import shutil
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: file_tap.py MESSAGES.jsonl [ignored...]", file=sys.stderr)
        return 2
    if "--discover" in argv[2:]:
        sys.stdout.write('{"streams": []}\n')
        return 0
    with open(argv[1], "rb") as source:
        shutil.copyfileobj(source, sys.stdout.buffer, 1024 * 1024)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
