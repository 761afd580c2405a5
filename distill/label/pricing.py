"""What a labeling run will cost, before and while it runs.

Prices in USD per 1M tokens (input, output), standard tier, as published on openai.com/api/pricing.
READ ON: 2025-08-07. Prices change: check them before a large run, or pass --price-in/--price-out, which
always win. The Batch API costs half. A local teacher costs 0.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_READ_ON = "2025-08-07"
PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
}
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    input_per_m: float | None  # None: unknown
    output_per_m: float | None
    source: str

    @property
    def known(self) -> bool:
        return self.input_per_m is not None and self.output_per_m is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if not self.known:
            return 0.0
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


def price_for(
    teacher: str, local: bool, price_in: float | None, price_out: float | None, batch: bool = False
) -> Price:
    if local:
        return Price(0.0, 0.0, "local teacher")
    if price_in is not None or price_out is not None:
        base = Price(price_in or 0.0, price_out or 0.0, "--price-in/--price-out")
    else:
        # Dated snapshots ("gpt-4o-mini-2024-07-18") price like their family: longest known prefix wins.
        name = teacher.split("/")[-1].lower()
        family = max((m for m in PRICES if name.startswith(m)), key=len, default=None)
        if family is None:
            return Price(None, None, f"no price known for {teacher!r}")
        base = Price(*PRICES[family], f"price table read on {PRICES_READ_ON} ({family})")
    if batch:
        return Price(base.input_per_m * BATCH_DISCOUNT, base.output_per_m * BATCH_DISCOUNT, base.source + ", batch -50%")
    return base


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters per token for English), used only for estimates."""
    return max(1, (len(text) + 3) // 4)
