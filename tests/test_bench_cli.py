"""``python -m bench``'s options, parsed without starting anything."""

from __future__ import annotations

import pytest

from bench.runner import _parser, plan_from_args


@pytest.mark.parametrize(
    ("argv", "only"),
    [
        ([], (False, False, False)),
        (["--only-throughput"], (True, False, False)),
        (["--only-memory"], (False, True, False)),
        (["--only-faults"], (False, False, True)),
    ],
)
def test_only_options(argv: list[str], only: tuple[bool, bool, bool]) -> None:
    plan = plan_from_args(_parser().parse_args(["--smoke", *argv]))
    assert (plan.only_throughput, plan.only_memory, plan.only_faults) == only


def test_only_throughput_and_only_memory_are_mutually_exclusive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both used to run the memory phase only, silently; now argparse refuses them."""
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["--smoke", "--only-throughput", "--only-memory"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--only-memory: not allowed with argument --only-throughput" in err
