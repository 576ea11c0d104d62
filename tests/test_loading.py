"""Policy and price files are read by loading.py, outside the pure rules; a file that
cannot be read or parsed is one of our errors, naming the file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agent_control_plane import ControlPlane, loading
from agent_control_plane.errors import InvalidInputError, PolicyError
from agent_control_plane.rules.tokens import Identity, PriceTable, TokenUsage

PRICES_YAML = "small:\n  input: '1'\n  output: '2'\ndefault: {input: '3', output: '4'}\n"
PRICES_JSON = '{"small": {"input": "1", "output": "2"}}'


@pytest.mark.parametrize(("name", "text"), [("p.yaml", PRICES_YAML), ("p.json", PRICES_JSON)])
def test_set_prices_reads_a_yaml_or_json_price_file(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp:
        usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
        for source in (tmp_path / name, str(tmp_path / name)):
            cp.set_prices(source)
            assert cp.record_usage(Identity(org="acme"), "small", usage).cost_usd == Decimal(3)


def test_the_old_price_table_of_a_path_still_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PRICES_YAML, encoding="utf-8")
    assert PriceTable.of(tmp_path / "p.yaml") == loading.price_table(tmp_path / "p.yaml")
    assert PriceTable.of(tmp_path / "p.yaml").default is not None


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("missing.yaml", None, "cannot read price file"),
        ("bad.yaml", "small: [unclosed", "not valid YAML"),
        ("bad.json", "{", "not valid JSON"),
        ("list.yaml", "- small\n", "a mapping of model to prices"),
    ],
)
def test_a_price_file_that_cannot_be_used_is_invalid_input(
    tmp_path: Path, name: str, text: str | None, says: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with (
        ControlPlane.open(f"sqlite:///{tmp_path / 'acp.db'}") as cp,
        pytest.raises(InvalidInputError, match=says) as caught,
    ):
        cp.set_prices(path)
    assert caught.value.field == "prices"


def test_the_old_import_path_of_load_policy_file_still_works(tmp_path: Path) -> None:
    from agent_control_plane.rules.policy import load_policy_file

    assert load_policy_file is loading.load_policy_file
    (tmp_path / "p.yaml").write_text("name: p\ndefault: allow\n", encoding="utf-8")
    assert load_policy_file(tmp_path / "p.yaml").default == "allow"
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy_file(tmp_path / "missing.yaml")
