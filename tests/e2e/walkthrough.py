"""The README's curl walkthrough as data: its blocks, in order, and a bash script that runs them.

A block is a fenced ```sh block right after a `<!-- walkthrough: <step> -->` marker. The script
runs them all in ONE bash process, as a person pasting them into one terminal would (variables
and the `field` helper carry over), and frames each block's output with `@@begin <step>` /
`@@end <step> <exit status>` lines so the test can check every step on its own.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

BLOCK = re.compile(r"<!-- walkthrough: ([a-z0-9-]+) -->\s*\n```sh\n(.*?)\n```", re.DOTALL)
FRAME = re.compile(r"^@@begin (\S+)\n(.*?)^@@end \1 (\d+)$", re.DOTALL | re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Step:
    """One README block."""

    name: str
    code: str


def steps(readme: pathlib.Path) -> list[Step]:
    """The walkthrough blocks of `readme`, in document order."""
    return [Step(name, code) for name, code in BLOCK.findall(readme.read_text())]


def script(blocks: list[Step], epilogue: str = "") -> str:
    """One bash script running every block in order, each framed by @@begin/@@end lines."""
    parts = []
    for step in blocks:
        begin = f"echo '@@begin {step.name}'"
        end = f'__status=$?\necho\necho "@@end {step.name} $__status"'
        parts.append(f"{begin}\n{step.code}\n{end}")
    parts.append(epilogue)
    return "\n".join(parts) + "\n"


def outputs(stdout: str) -> dict[str, tuple[str, int]]:
    """Each step's output and exit status, parsed back from the framed stdout."""
    return {name: (body, int(status)) for name, body, status in FRAME.findall(stdout)}
