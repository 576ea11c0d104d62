"""Prices from LiteLLM's model cost map, for models a price table does not list."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from agent_control_plane.errors import ConfigurationError
from agent_control_plane.rules.tokens import Price

_MILLION = Decimal(1_000_000)


def _per_million(per_token: object) -> Decimal | None:
    if per_token is None:
        return None
    # str() first: the map holds floats, and Decimal(float) would carry binary noise.
    return (Decimal(str(per_token)) * _MILLION).normalize()


@lru_cache(maxsize=1024)
def litellm_price(model: str) -> Price | None:
    """The cost-map price of ``model`` in USD per million tokens, or None if it has none."""
    try:
        import litellm
    except ImportError as error:
        raise ConfigurationError(
            "the litellm price fallback needs litellm: "
            "pip install 'agent-control-plane-sql[litellm]'"
        ) from error
    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises a bare Exception for a model it does not know
        return None
    input_price = _per_million(info.get("input_cost_per_token"))
    output_price = _per_million(info.get("output_cost_per_token"))
    if input_price is None or output_price is None:
        return None
    return Price(input_price, output_price, _per_million(info.get("cache_read_input_token_cost")))
