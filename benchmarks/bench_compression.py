"""Overheads of compression and of the semantic cache on this machine.

Compression: milliseconds to compress one 10,000-token context at 3x (target <= 20 ms),
per stage set, on an L-Eval document when ../shared/data is present, else on generated
prose; then, with the default stages, a 10,000-token context of each other L-Eval task.
Semantic cache: lookup latency with 100,000 cached entries (target p50 <= 2 ms).
Prints wall-clock and CPU time: CPU time is what this process used, and is the fairer
number when other processes share the machine.

    python benchmarks/bench_compression.py [--entries 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from itertools import accumulate
from pathlib import Path

from llmrouter import tokens
from llmrouter.cache.semantic import SemanticCache
from llmrouter.compression import compress

LEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "compression" / "leval"
_VOCAB = [
    "market",
    "revenue",
    "quarter",
    "growth",
    "customer",
    "product",
    "margin",
    "cost",
    "supply",
    "demand",
    "contract",
    "policy",
    "report",
    "agency",
    "federal",
    "program",
    "budget",
    "court",
    "judge",
    "senate",
    "law",
    "review",
    "study",
    "model",
    "data",
    "result",
    "method",
    "sample",
    "error",
    "network",
    "training",
    "layer",
    "accuracy",
    "baseline",
    "dataset",
    "river",
    "city",
    "school",
    "student",
    "teacher",
    "hospital",
    "patient",
    "doctor",
    "energy",
    "price",
    "tax",
    "bank",
    "loan",
]


def _generated_document(rng: random.Random, n_tokens: int) -> str:
    paragraphs: list[str] = []
    while tokens.count_text_tokens("\n\n".join(paragraphs)) < n_tokens:
        sentences = []
        for _ in range(rng.randint(3, 7)):
            words = [rng.choice(_VOCAB) for _ in range(rng.randint(8, 25))]
            if rng.random() < 0.4:
                words.insert(rng.randrange(len(words)), str(rng.randint(2, 2000)))
            sentences.append(" ".join(words).capitalize() + ".")
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def _leval_document(path: Path, n_tokens: int) -> str:
    """The first ``n_tokens`` of an L-Eval file's documents, one after another."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    text = "\n\n".join(row["input"] for row in rows)
    return tokens.encoding_for_model().decode(tokens.encode(text)[:n_tokens])


def _document(n_tokens: int) -> tuple[str, str]:
    """About ``n_tokens`` of real long-document text, and the source used."""
    files = sorted(LEVAL.glob("*.jsonl")) if LEVAL.is_dir() else []
    if files:
        return _leval_document(files[0], n_tokens), files[0].name
    return _generated_document(random.Random(0), n_tokens), "generated prose"


def _time(fn: object, repeat: int) -> tuple[list[float], list[float]]:
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return walls, cpus


_QUESTION = "What were the main findings and the figures reported for them?"


def _messages(document: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer from the document."},
        {"role": "user", "content": f"{document}\n\n{_QUESTION}"},
    ]


def bench_compression(repeat: int) -> None:
    document, source = _document(10_000)
    messages = _messages(document)
    first = compress(messages, ratio=3.0)  # warm-up: loads the tokenizer tables
    print(f"compression of a {first.tokens_before}-token context ({source}), ratio 3:")
    stage_sets = {
        "normalize": ["normalize"],
        "normalize+dedupe": ["normalize", "dedupe"],
        "+extract": ["normalize", "dedupe", "extract"],
        "+extract+prune (default)": None,
    }
    for name, stages in stage_sets.items():
        result = compress(messages, ratio=3.0, stages=stages)
        walls, cpus = _time(lambda s=stages: compress(messages, ratio=3.0, stages=s), repeat)
        print(
            f"  {name:26s} tokens {result.tokens_before}->{result.tokens_after}  "
            f"wall p50 {statistics.median(walls):6.1f} ms  "
            f"cpu p50 {statistics.median(cpus):6.1f} ms"
        )
    # the other kinds of document, default stages: the method must not be tuned to one text
    for path in sorted(LEVAL.glob("*.jsonl"))[1:] if LEVAL.is_dir() else []:
        other = _messages(_leval_document(path, 10_000))
        result = compress(other, ratio=3.0)
        walls, cpus = _time(lambda m=other: compress(m, ratio=3.0), repeat)
        label = f"{path.stem} (default)"
        print(
            f"  {label:26s} tokens {result.tokens_before}->{result.tokens_after}  "
            f"wall p50 {statistics.median(walls):6.1f} ms  "
            f"cpu p50 {statistics.median(cpus):6.1f} ms"
        )


def _zipf_vocabulary(rng: random.Random, size: int = 30_000) -> tuple[list[str], list[float]]:
    """Made-up words with Zipf frequencies, like the words of real prompts."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(size)]
    return words, list(accumulate(1.0 / rank for rank in range(1, size + 1)))


_ZIPF = _zipf_vocabulary(random.Random(7))


def _prompt(rng: random.Random) -> str:
    words, weights = _ZIPF
    body = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(8, 40)))
    return f"What is the {rng.choice(_VOCAB)} of {rng.randint(1, 10_000)} {body}?"


def bench_semantic(entries: int, repeat: int) -> None:
    rng = random.Random(1)
    cache = SemanticCache()
    started = time.perf_counter()
    prompts = [_prompt(rng) for _ in range(entries)]
    for index, prompt in enumerate(prompts):
        cache.put([{"role": "user", "content": prompt}], index)
    fill = time.perf_counter() - started
    print(
        f"semantic cache with {len(cache)} entries "
        f"(filled in {fill:.1f} s, {fill / entries * 1e6:.0f} us per put incl. prompt generation):"
    )
    queries = {
        "hit (reworded)": [
            [{"role": "user", "content": "Please, " + rng.choice(prompts).lower()}]
            for _ in range(repeat)
        ],
        "miss (new prompt)": [[{"role": "user", "content": _prompt(rng)}] for _ in range(repeat)],
    }
    for name, batch in queries.items():
        walls: list[float] = []
        cpus: list[float] = []
        hits = 0
        for messages in batch:
            wall, cpu = time.perf_counter(), time.process_time()
            hits += cache.get(messages) is not None
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        walls.sort()
        print(
            f"  lookup {name:18s} hits {hits}/{len(batch)}  "
            f"wall p50 {statistics.median(walls):.2f} ms  "
            f"p95 {walls[int(0.95 * (len(walls) - 1))]:.2f} ms  "
            f"cpu p50 {statistics.median(cpus):.2f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="compression and semantic cache overheads")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    bench_compression(args.repeat)
    bench_semantic(args.entries, max(args.repeat, 200))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
