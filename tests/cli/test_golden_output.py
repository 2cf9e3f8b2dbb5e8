"""Byte-for-byte oracle for what the command line prints (cases in golden_cases.py): a change in any printed
byte of `gcp-wif setup` or of a `--help` fails here. Regenerate after an intended change with
`python -m tests.cli.golden_cases` and review the diff."""

from __future__ import annotations

import pytest

from tests.cli.golden_cases import CASES, GOLDEN, HELP, environment, render


@pytest.mark.parametrize("name", sorted([*CASES, *HELP]))
def test_the_output_is_byte_identical_to_the_golden_file(name):
    with environment(name):
        text = render(name)
    assert text == (GOLDEN / f"{name}.txt").read_text(), "regenerate with `python -m tests.cli.golden_cases`"


def test_every_golden_file_has_a_case():
    assert {p.stem for p in GOLDEN.glob("*.txt")} == {*CASES, *HELP}
