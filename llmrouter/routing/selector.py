"""The decision rule: the cheapest backend likely enough to answer well.

1. Exclude backends that cannot serve the request: context window, required
   capabilities, circuit state, the per-call cost cap, the latency cap or SLO.
2. Among the rest, those whose predicted probability of a good answer is at
   least ``quality_floor`` compete on expected cost, ties broken by predicted
   latency. If none clears the floor, the best-predicted one is taken.

The value rule (``answer_value_usd`` set) replaces step 2's "cheapest" with "highest
``p - cost / answer_value_usd``": how much better a dearer backend is predicted to be is
weighed against how much dearer it is, instead of reading each noisy probability against
one line. It is ``brain.evaluation.decide_value`` at ``price = 1 / answer_value_usd``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ContextTooLarge, NoBackendAvailable
from ..policy.schema import BackendConfig
from .decision import Candidate, Decision
from .latency import LatencyTracker
from .predictor import PromptProfile, QualityPredictor
from .request import RequestFacts

__all__ = ["Limits", "Sticky", "estimated_cost_usd", "select"]


@dataclass(frozen=True, slots=True)
class Limits:
    quality_floor: float
    expected_output_tokens: int
    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    # Set: the value rule, with this worth (USD) of one good answer; None: the floor rule.
    answer_value_usd: float | None = None


# Utilities this close count as equal, as in brain.evaluation.decide_value.
_TIE = 1e-12


@dataclass(frozen=True, slots=True)
class Sticky:
    """The backend a conversation has been on; ``prefix_tokens``, how many of this prompt's
    tokens were its previous prompt there (what that provider may hold in its prompt cache);
    whether the cache is likely still warm (``cache_warm``, from ``idle_s``); and whether the
    conversation stays there while that backend clears the floor (``stays``) or the backend
    only competes with its cached prefix discounted."""

    backend: str
    prefix_tokens: int
    idle_s: float = 0.0
    cache_warm: bool = True
    stays: bool = True
    # False when the last reply came from the router's own cache: nothing was cached then.
    provider_saw: bool = True


# Providers cache a prompt's prefix only from this many tokens (OpenAI: 1,024; Gemini's
# implicit caching: 1,024-2,048), so a shorter prefix is read at the full price.
MIN_CACHED_PREFIX_TOKENS = 1024


def cached_prefix_tokens(backend: BackendConfig, sticky: Sticky) -> int:
    """The prompt tokens ``backend`` likely reads from its provider's prompt cache: the
    conversation's previous prompt, when the cache is warm, long enough to be cached, and
    priced; 0 for Anthropic, which caches only prompts that mark ``cache_control``."""
    if (
        not sticky.cache_warm
        or sticky.prefix_tokens < MIN_CACHED_PREFIX_TOKENS
        or backend.provider == "anthropic"
        or backend.resolved_price.cached_input_per_million is None
    ):
        return 0
    return sticky.prefix_tokens


def select(
    facts: RequestFacts,
    profile: PromptProfile,
    backends: Sequence[BackendConfig],
    predictor: QualityPredictor,
    limits: Limits,
    latency: LatencyTracker,
    is_healthy: Callable[[str], bool],
    pinned: str | None = None,
    sticky: Sticky | None = None,
) -> Decision:
    output_tokens = limits.expected_output_tokens
    if facts.max_tokens is not None:
        output_tokens = min(output_tokens, facts.max_tokens)
    needed_window = facts.prompt_tokens + (facts.max_tokens or 0)

    candidates: list[Candidate] = []
    eligible: list[Candidate] = []
    floor, probability = limits.quality_floor, predictor.probability
    # The conversation's backend is priced with its cached prefix at the cached-input rate:
    # any other backend would read the whole history at the full input price.
    sticky_name = sticky.backend if sticky is not None else None
    cached, saving = 0, 0.0
    for backend in backends:
        name = backend.name
        cost = estimated_cost_usd(backend, facts.prompt_tokens, output_tokens)
        if name == sticky_name:
            assert sticky is not None
            cached = cached_prefix_tokens(backend, sticky)
            if cached:
                full = cost
                cost = estimated_cost_usd(backend, facts.prompt_tokens, output_tokens, cached)
                saving = full - cost
        estimate = latency.get(name)
        predicted_ms = estimate.predict_ms(output_tokens) if estimate is not None else None
        quality = probability(profile, backend)
        # Positional, in field order: name, quality, cost, latency, excluded, clears floor.
        candidate = Candidate(name, quality, cost, predicted_ms, None, quality >= floor)
        reason = _exclusion(backend, candidate, facts, needed_window, limits, is_healthy)
        if reason is None:
            eligible.append(candidate)
        else:
            candidate.excluded_reason = reason
        candidates.append(candidate)

    value = limits.answer_value_usd
    if value is None:
        passing = sorted(
            (c for c in eligible if c.clears_floor),
            key=lambda c: (c.estimated_cost_usd, _latency_key(c)),
        )
    else:
        passing = _by_value([c for c in eligible if c.clears_floor], value)
    failing = sorted(
        (c for c in eligible if not c.clears_floor),
        key=lambda c: (-c.predicted_quality, c.estimated_cost_usd),
    )
    excluded = [c for c in candidates if not c.eligible]
    ranked = passing + failing + excluded

    staying = kept = None
    if sticky is not None and sticky.stays:
        staying = next((c for c in passing if c.name == sticky.backend), None)
        if staying is not None:
            kept = _conversation_choice(staying, passing, value)
            if value is not None and kept is passing[0]:
                kept = None  # the value rule's own pick; its reason says why
    if pinned is not None:
        chosen = next(c for c in candidates if c.name == pinned)
        if chosen.excluded_reason and chosen.excluded_reason.startswith("context window"):
            raise ContextTooLarge(f"backend {pinned!r}: {chosen.excluded_reason}")
        reason = f"pinned to {pinned} by the caller"
    elif kept is not None:
        # Staying keeps the provider's prompt cache; leave only for a backend this turn is
        # predicted to need (the conversation's no longer clears the floor: above) or one
        # predicted at least as well that is worth it (_conversation_choice).
        assert staying is not None
        chosen = kept
        ranked.remove(chosen)
        ranked.insert(0, chosen)
        if chosen is not staying:
            reason = _move_reason(staying, chosen, value)
        elif value is None:
            reason = (
                f"conversation stays on {chosen.name}: still predicted ≥ "
                f"{limits.quality_floor:.2f} (p={chosen.predicted_quality:.2f})"
            )
        else:
            reason = _value_stay_reason(chosen, passing[0])
    elif passing:
        chosen = passing[0]
        reason = (
            f"cheapest of {len(passing)} backend(s) predicted ≥ {limits.quality_floor:.2f} "
            f"(p={chosen.predicted_quality:.2f}, est. ${chosen.estimated_cost_usd:.6f})"
            if value is None
            else _value_reason(chosen, len(passing), value, limits.quality_floor)
        )
    elif failing:
        chosen = failing[0]
        reason = (
            f"no backend predicted ≥ {limits.quality_floor:.2f}; best predicted is "
            f"{chosen.name} (p={chosen.predicted_quality:.2f})"
        )
    else:
        raise _nothing_serves(facts, needed_window, backends, candidates)
    if sticky is not None and pinned is None:
        stayed = staying is not None and chosen is staying
        reason += _cache_note(sticky, chosen, facts.prompt_tokens, stayed, cached, saving)

    return Decision(
        backend=chosen.name,
        candidates=ranked,
        complexity=profile.complexity,
        reason=reason,
        quality_floor=limits.quality_floor,
        prompt_tokens=facts.prompt_tokens,
        signals=list(profile.signals),
        pinned=pinned is not None,
        answer_value_usd=value,
        demands=dict(profile.demands),
    )


def estimated_cost_usd(
    backend: BackendConfig, prompt_tokens: int, output_tokens: int, cached_tokens: int = 0
) -> float:
    """What a call is expected to cost on ``backend`` (``llmrouter eval`` uses it too), with
    ``cached_tokens`` of the prompt read from the provider's prompt cache at its cached-input
    price (the input price when none is known)."""
    price = backend.resolved_price
    cost = prompt_tokens * price.input_per_million + output_tokens * price.output_per_million
    if cached_tokens and price.cached_input_per_million is not None:
        cost -= cached_tokens * (price.input_per_million - price.cached_input_per_million)
    return cost / 1_000_000


def _cache_note(
    sticky: Sticky,
    chosen: Candidate,
    prompt_tokens: int,
    stayed: bool,
    cached: int,
    saving: float,
) -> str:
    """What the conversation's prompt cache did to this decision, for the reason."""
    if not sticky.provider_saw:
        where = "its" if chosen.name == sticky.backend else f"{sticky.backend}'s"
        return f"; {where} provider never read the previous prompt (the router's cache answered)"
    if chosen.name != sticky.backend:
        if not sticky.cache_warm:
            return f"; {sticky.backend}'s prompt cache had likely expired ({sticky.idle_s:.0f} s)"
        return f"; leaves {sticky.backend}, the conversation's backend, and its prompt cache"
    if not sticky.cache_warm:
        kept = "kept for the conversation's continuity" if stayed else "not discounted"
        return f"; its prompt cache has likely expired ({sticky.idle_s:.0f} s idle), {kept}"
    if not cached:
        return "; its prompt cache is not counted (prefix too short, or no cached-input price)"
    return (
        f"; ~{cached} of {prompt_tokens} prompt tokens in its prompt cache save "
        f"${saving:.6f} (switching would forfeit them)"
    )


def _latency_key(candidate: Candidate) -> float:
    return candidate.predicted_latency_ms if candidate.predicted_latency_ms is not None else 0.0


def _by_value(passing: list[Candidate], value: float) -> list[Candidate]:
    """Best ``value * p - cost`` first; near-equal utilities go to the cheaper backend, then
    the better-predicted, then the faster (the evaluation's ``decide_value`` tie rule).

    The evaluation's utility ``p - cost / value`` scaled by ``value``, so its tolerance is
    ``value * 1e-12`` here; no ``1 / value``, which overflows for a tiny value (and then
    ``inf * 0`` made a free backend's utility NaN)."""
    if not passing:
        return passing
    utility = {c.name: value * c.predicted_quality - c.estimated_cost_usd for c in passing}
    best = max(utility.values())
    tie = value * _TIE

    def key(c: Candidate) -> tuple[bool, float, float, float, float]:
        tied = utility[c.name] >= best - tie
        return (
            not tied,
            0.0 if tied else -utility[c.name],
            c.estimated_cost_usd,
            -c.predicted_quality,
            _latency_key(c),
        )

    return sorted(passing, key=key)


def _conversation_choice(
    staying: Candidate, passing: list[Candidate], value: float | None
) -> Candidate:
    """Where a conversation on ``staying`` (which clears the floor) goes: it stays, unless a
    backend predicted at least as well is worth the move. Under the floor rule: the cheapest
    such backend that costs less than staying, its cache counted (nothing is lost by moving).
    Under the value rule: the best expected value among them, when it beats staying's (a
    dearer backend must be worth its price and the forfeited cache). ``passing`` is in the
    rule's order (cost, or expected value)."""
    rivals = [
        c for c in passing if c is not staying and c.predicted_quality >= staying.predicted_quality
    ]
    if value is None:
        cheaper = [c for c in rivals if c.estimated_cost_usd < staying.estimated_cost_usd]
        return cheaper[0] if cheaper else staying
    if not rivals:
        return staying
    best = rivals[0]
    gain = value * (best.predicted_quality - staying.predicted_quality) - (
        best.estimated_cost_usd - staying.estimated_cost_usd
    )
    return best if gain > value * _TIE else staying


def _move_reason(staying: Candidate, chosen: Candidate, value: float | None) -> str:
    why = (
        "for less"
        if value is None
        else f"worth more at ${value:g} per good answer "
        f"(est. ${chosen.estimated_cost_usd:.6f} vs ${staying.estimated_cost_usd:.6f})"
    )
    return (
        f"conversation moves from {staying.name} (p={staying.predicted_quality:.2f}) to "
        f"{chosen.name}: predicted at least as well (p={chosen.predicted_quality:.2f}), {why}"
    )


def _value_reason(chosen: Candidate, count: int, value: float, floor: float) -> str:
    among = f"{count} backend(s)" + (f" predicted ≥ {floor:.2f}" if floor > 0 else "")
    gain = value * chosen.predicted_quality - chosen.estimated_cost_usd
    return (
        f"best expected value of {among} at ${value:g} per good answer: "
        f"p={chosen.predicted_quality:.2f} × ${value:g} − est. ${chosen.estimated_cost_usd:.6f} "
        f"= ${gain:.6f}"
    )


def _value_stay_reason(chosen: Candidate, top: Candidate) -> str:
    return (
        f"conversation stays on {chosen.name} (p={chosen.predicted_quality:.2f}): no backend "
        f"predicted at least as well is worth more (the best expected value, {top.name}, is "
        f"predicted {top.predicted_quality:.2f})"
    )


def _exclusion(
    backend: BackendConfig,
    candidate: Candidate,
    facts: RequestFacts,
    needed_window: int,
    limits: Limits,
    is_healthy: Callable[[str], bool],
) -> str | None:
    window = backend.resolved_context_window
    if needed_window > window:
        return f"context window {window} < {needed_window} tokens needed"
    if facts.needs:  # most requests need no capability
        missing = sorted(need for need in facts.needs if not backend.supports(need))
        if missing:
            return f"lacks capability: {', '.join(missing)}"
    if not is_healthy(backend.name):
        return "circuit open after repeated failures"
    if limits.max_cost_usd is not None and candidate.estimated_cost_usd > limits.max_cost_usd:
        return (
            f"estimated ${candidate.estimated_cost_usd:.6f} > max_cost_usd ${limits.max_cost_usd}"
        )
    predicted = candidate.predicted_latency_ms
    if predicted is not None:
        if limits.max_latency_ms is not None and predicted > limits.max_latency_ms:
            return f"predicted {predicted:.0f} ms > max_latency_ms {limits.max_latency_ms:.0f}"
        if backend.latency_slo_ms is not None and predicted > backend.latency_slo_ms:
            return f"predicted {predicted:.0f} ms > its latency SLO {backend.latency_slo_ms:.0f}"
    return None


def _nothing_serves(
    facts: RequestFacts,
    needed_window: int,
    backends: Sequence[BackendConfig],
    candidates: list[Candidate],
) -> Exception:
    if all(c.excluded_reason and c.excluded_reason.startswith("context") for c in candidates):
        largest = max(backends, key=lambda b: b.resolved_context_window)
        short = needed_window - largest.resolved_context_window
        return ContextTooLarge(
            f"the request needs {needed_window} tokens ({facts.prompt_tokens} prompt + "
            f"{facts.max_tokens or 0} max_tokens) but the largest context window is "
            f"{largest.name!r} with {largest.resolved_context_window}: {short} tokens too many"
        )
    reasons = "; ".join(f"{c.name}: {c.excluded_reason}" for c in candidates)
    unhealthy = any((c.excluded_reason or "").startswith("circuit") for c in candidates)
    return NoBackendAvailable(
        f"no backend can serve this request ({reasons})", caller_limits=not unhealthy
    )
