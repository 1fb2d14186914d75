"""``dlr-gateway ... --help``: every option says what it does and what it is when left out."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.cli import _parser


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path or "dlr-gateway", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{path} {name}".strip())
    return found


COMMANDS = _commands(_parser())


def test_every_command_is_described() -> None:
    names = [name for name, _ in COMMANDS]
    assert {"serve", "token", "simulator", "db", "db upgrade", "db current", "openapi"} <= set(
        names
    )
    for name, parser in COMMANDS:
        if name != "dlr-gateway":
            assert parser.description, name


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_option_has_help_that_gives_its_default(
    name: str, parser: argparse.ArgumentParser
) -> None:
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        assert action.help, f"{name} {action.option_strings[0]}"
        text = parser._get_formatter()._expand_help(action)
        if action.required:
            assert "(required)" in text, f"{name} {action.option_strings[0]}"
        else:
            assert "(default: " in text, f"{name} {action.option_strings[0]}: {text}"
            if action.default not in (None, False):
                assert f"(default: {action.default})" in text, text


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_descriptions_are_plain_text_as_written(name: str, parser: argparse.ArgumentParser) -> None:
    """``db upgrade --help`` said "on postgresql" and ``network import --help`` "a wiremap
    csv" (``str.capitalize`` lowered them); ``network --help`` showed reST's double
    backquotes."""
    text = parser.format_help()
    assert "``" not in text, name
    assert "postgresql" not in text and " csv" not in text, (name, text)


def test_both_exports_take_the_same_output_flags() -> None:
    """``network export`` took ``--output``/``-o``, ``export`` only ``--out``: an operator
    who had used one was refused by the other. Both take all three."""
    parser = _parser()
    for flag in ("--out", "--output", "-o"):
        assert parser.parse_args(["export", "devices", flag, "f.csv"]).out == Path("f.csv")
        assert parser.parse_args(["network", "export", flag, "f.csv"]).output == Path("f.csv")
