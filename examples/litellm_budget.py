"""LiteLLM calls held against ACP token budgets, offline (litellm's mock_response).

    python examples/litellm_budget.py [DATABASE_URL]

Alice has a daily budget of 300 tokens. Each completion holds its prompt + max_tokens before
it runs and is settled with the usage the provider reported; the call that cannot fit is
refused before it reaches the provider, sync and async.
"""

from __future__ import annotations

import asyncio
import os
import sys

# Before litellm is imported: its model cost map comes from the package, not the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from agent_control_plane import ControlPlane
from agent_control_plane.errors import TokenBudgetExhausted
from agent_control_plane.integrations.litellm_callback import AcpBudgetCallback, LiteLLMCallBlocked
from agent_control_plane.rules.tokens import Identity

ALICE = Identity(org="acme", user="alice")
MESSAGES = [{"role": "user", "content": "Summarise ticket 4711 in one line."}]


def main(url: str) -> None:
    with ControlPlane.open(url) as cp:
        cp.set_prices({}, fallback="litellm")  # gpt-4o-mini priced from litellm's cost map
        cp.set_token_budget(ALICE, "day", max_tokens=300)
        callback = AcpBudgetCallback(cp, identity=ALICE).install()
        try:
            reply = litellm.completion(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=100, mock_response="Done."
            )
            print(f"sync call answered: {reply.choices[0].message.content}")
            try:
                litellm.completion(
                    model="gpt-4o-mini", messages=MESSAGES, max_tokens=400, mock_response="x"
                )
            except LiteLLMCallBlocked as blocked:
                print(f"sync call refused before the provider: {type(blocked.error).__name__}")

            async def calls() -> None:
                await litellm.acompletion(
                    model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, mock_response="Ok."
                )
                print("async call answered")
                try:
                    await litellm.acompletion(
                        model="gpt-4o-mini", messages=MESSAGES, max_tokens=400, mock_response="x"
                    )
                except TokenBudgetExhausted:
                    print("async call refused before the provider: TokenBudgetExhausted")
                await asyncio.to_thread(callback.wait_idle, 10)

            asyncio.run(calls())
            callback.wait_idle(10)
        finally:
            callback.uninstall()
        [status] = cp.token_budget_status()
        [usage] = cp.token_usage(group_by=["user", "model"])
        print(f"alice used {status['used']['tokens']} tokens in {status['used']['requests']} calls")
        print(f"held now: {status['reserved']['tokens']} tokens")
        requests, tokens, cost = usage["requests"], usage["total_tokens"], usage["cost_usd"]
        print(f"ledger: {requests} calls, {tokens} tokens, ${cost}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///litellm_example.db")
