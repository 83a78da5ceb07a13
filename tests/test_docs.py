"""The docs and the code agree: every ``suanli`` command in README.md's and docs/*.md's shell
blocks names a command that exists, with options it has; the ones that run offline and without
a server are run, and must succeed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from suanli.cli.main import cli

from .conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: commands shown in the docs that run here as written, offline, with no server
RUNNABLE = {
    "suanli demo",
    "suanli catalog list --json",
    "suanli policies",
    "suanli spec schema alliance",
    "suanli spec schema job",
}


def doc_commands() -> list[tuple[str, str]]:
    """(file, command) for each ``suanli`` command line of a shell block, continuations
    joined, comments and the ``uv run`` prefix dropped."""
    out = []
    for path in DOCS:
        for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", path.read_text(), re.S):
            for raw in block.replace("\\\n", " ").splitlines():
                bare = re.sub(r"\s+#.*$", "", raw).strip()
                command = re.sub(r"^(python3 -m )?uv run (--frozen )?", "", bare)
                if command.startswith("suanli "):
                    out.append((path.name, command))
    return out


def variants(line: str) -> list[list[str]]:
    """``suanli job ID | cancel ID`` is two commands: siblings of the first one's command."""
    parts = [shlex.split(p.replace("[", " ").replace("]", " ")) for p in line.split(" | ")]
    first = parts[0][1:]
    path = command_path(first)
    out = [first]
    for alt in parts[1:]:
        out.append([*path[:-1], *alt])
    return [expanded for argv in out for expanded in choices(argv)]


def choices(argv: list[str]) -> list[list[str]]:
    """``schema alliance|job``: a word of choices is one command per choice."""
    for k, word in enumerate(argv):
        if "|" in word:
            return [[*argv[:k], c, *argv[k + 1 :]] for c in word.split("|")]
    return [argv]


def command_path(argv: list[str]) -> list[str]:
    """The longest run of leading words that name (sub)commands."""
    path: list[str] = []
    command: click.Command = cli
    for word in argv:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(click.Context(command), word)
        if sub is None:
            break
        path.append(word)
        command = sub
    return path


def resolve(path: list[str]) -> click.Command:
    command: click.Command = cli
    for word in path:
        assert isinstance(command, click.Group)
        sub = command.get_command(click.Context(command), word)
        assert sub is not None
        command = sub
    return command


def test_every_documented_command_exists_with_its_options() -> None:
    commands = doc_commands()
    assert len(commands) > 30
    bad = []
    for name, line in commands:
        for argv in variants(line):
            path = command_path(argv)
            if not path:
                bad.append(f"{name}: {line!r}: no command {argv[0]!r}")
                continue
            command = resolve(path)
            known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for word in argv[len(path) :]:
                option = word.split("=", 1)[0]
                if option.startswith("-") and option not in known:
                    bad.append(f"{name}: {line!r}: {' '.join(path)} has no option {option}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("line", sorted(RUNNABLE))
def test_the_offline_commands_run_as_documented(line: str) -> None:
    shown = {line for _, line in doc_commands()} | {
        f"suanli {' '.join(v)}" for _, line in doc_commands() for v in variants(line)
    }
    assert line in shown, f"{line!r} is no longer in the docs: drop it here"
    argv = shlex.split(line)[1:]
    r = subprocess.run(
        [sys.executable, "-m", "suanli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(ROOT),
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip()
