"""A semantic cache: reuse an answer for the same question asked in other words, guarded.

Only the latest message is compared semantically; everything before it (system prompt,
earlier turns) must match exactly after whitespace normalisation, and entries live in
separate namespaces (e.g. per tenant and per backend) that never see each other. A
candidate above the similarity threshold is still refused when the guards in
:mod:`llmrouter.cache.guards` find a difference in numbers, negations, entities, units,
operators or code. The exact cache should be tried first; this one is opt-in.

Search is a matrix product over the namespace's vectors; with the built-in embedding and
more than a few thousand entries, candidates are first narrowed to entries sharing one of
the query's rarest words (a reworded prompt keeps its rare words), so a lookup stays around
a millisecond at 100,000 entries.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrouter.cache.embedding import Embedder, HashingEmbedder, canonical_words
from llmrouter.cache.guards import PromptFacts, conflicts, extract_facts
from llmrouter.tokens import message_text

__all__ = ["SemanticCache", "SemanticLookup"]

# Below this many entries in a namespace, every entry is scored (exact search).
_EXACT_SEARCH_ROWS = 4096
# Candidate entries come from the postings of this many of the query's rarest words.
_RARE_WORDS = 3
# Beyond this many candidates, scoring everything is as cheap as collecting them.
_MAX_CANDIDATES = 20_000
# Guard checks per lookup: the best few candidates above the threshold.
_CHECKED_CANDIDATES = 8


@dataclass(frozen=True)
class SemanticLookup:
    """The outcome of a lookup, with why a near match was refused (for logs and tests)."""

    value: Any = None
    hit: bool = False
    similarity: float = 0.0
    refused_by: tuple[str, ...] = ()
    matched_prompt: str | None = None


@dataclass
class _Entry:
    prompt: str
    facts: PromptFacts
    value: Any
    created: float
    key: str = ""
    words: tuple[str, ...] = ()
    alive: bool = True


@dataclass
class _Shelf:
    """Entries sharing a namespace and an exact conversation context."""

    dim: int
    vectors: np.ndarray = field(init=False)
    entries: list[_Entry] = field(default_factory=list)
    postings: dict[str, list[int]] = field(default_factory=dict)
    by_prompt: dict[str, int] = field(default_factory=dict)
    by_bag: dict[str, list[int]] = field(default_factory=dict)
    dead: int = 0

    def __post_init__(self) -> None:
        self.vectors = np.zeros((16, self.dim), dtype=np.float32)

    def add(self, entry: _Entry, vector: np.ndarray) -> None:
        row = len(self.entries)
        if row == len(self.vectors):
            grown = np.zeros((2 * row, self.dim), dtype=np.float32)
            grown[:row] = self.vectors
            self.vectors = grown
        self.vectors[row] = vector
        self.entries.append(entry)
        self.by_prompt[entry.key] = row
        self.by_bag.setdefault(_bag(entry.words), []).append(row)
        for word in set(entry.words):
            self.postings.setdefault(word, []).append(row)

    def compact(self) -> None:
        """Drop evicted rows once they are the majority; rows are renumbered."""
        alive = [row for row, entry in enumerate(self.entries) if entry.alive]
        vectors = self.vectors[alive]
        entries = [self.entries[row] for row in alive]
        self.__post_init__()
        self.entries, self.postings, self.by_prompt, self.by_bag = [], {}, {}, {}
        self.dead = 0
        for entry, vector in zip(entries, vectors, strict=True):
            self.add(entry, vector)

    def candidates(self, words: Sequence[str], indexed: bool) -> np.ndarray | None:
        """Rows worth scoring; None means all of them.

        Rows with the same bag of canonical words come first (a prompt reworded only in
        case, punctuation, spacing, courtesy or clause order); then rows sharing one of the
        query's rarest words. A query made only of common words is searched exhaustively.
        """
        if not indexed or len(self.entries) <= _EXACT_SEARCH_ROWS:
            return None
        same = self.by_bag.get(_bag(words), [])
        lists = sorted((self.postings[w] for w in set(words) if w in self.postings), key=len)
        lists = lists[:_RARE_WORDS]
        if lists and len(lists[0]) > _MAX_CANDIDATES:
            return None
        rows = [*same]
        for posting in lists:
            if len(rows) + len(posting) > _MAX_CANDIDATES:
                break
            rows.extend(posting)
        return np.unique(np.asarray(rows, dtype=np.int64))


def _bag(words: Sequence[str]) -> str:
    return " ".join(sorted(words))


class SemanticCache:
    """Guarded semantic cache, in memory, thread-safe.

    ``embed`` turns a batch of texts into vectors (e.g. a call to a backend's
    ``/v1/embeddings``); by default a local hashed bag of words is used, which needs no
    model. ``threshold`` is the minimum cosine similarity for a hit. ``namespace`` is the
    default namespace (pass e.g. ``f"{tenant}/{backend}"`` per call). The oldest entries
    are evicted beyond ``max_entries``; entries older than ``ttl`` seconds are ignored.
    """

    def __init__(
        self,
        threshold: float = 0.92,
        *,
        embed: Embedder | None = None,
        namespace: str = "",
        max_entries: int = 100_000,
        ttl: float | None = None,
        dim: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.threshold = threshold
        self.namespace = namespace
        self.max_entries = max_entries
        self.ttl = ttl
        self._local = HashingEmbedder(dim) if embed is None else None
        self._embed: Embedder = embed if embed is not None else self._local  # type: ignore[assignment]
        # rare-word candidate narrowing is only sound for a lexical embedding
        self._indexed = embed is None
        self._clock = clock
        self._shelves: dict[tuple[str, str], _Shelf] = {}
        self._order: deque[tuple[tuple[str, str], _Entry]] = deque()
        self._alive = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._alive

    def clear(self) -> None:
        with self._lock:
            self._shelves.clear()
            self._order.clear()
            self._alive = 0

    def get(self, messages: Sequence[Mapping[str, Any]], namespace: str | None = None) -> Any:
        """The cached value for an equivalent request, or None."""
        return self.lookup(messages, namespace).value

    def lookup(
        self, messages: Sequence[Mapping[str, Any]], namespace: str | None = None
    ) -> SemanticLookup:
        """Like :meth:`get`, with the similarity and the guards that refused a near match."""
        key, prompt = self._split(messages, namespace)
        if not prompt.strip():
            return SemanticLookup()
        words = canonical_words(prompt)
        vector = self._vector(prompt, words)
        with self._lock:
            shelf = self._shelves.get(key)
            if shelf is None or not shelf.entries:
                return SemanticLookup()
            rows = shelf.candidates(words, self._indexed)
            count = len(shelf.entries)
            matrix = shelf.vectors[:count] if rows is None else shelf.vectors[rows]
            if not len(matrix):
                return SemanticLookup()
            scores = matrix @ vector
            order = np.argsort(-scores)[:_CHECKED_CANDIDATES]
            facts: PromptFacts | None = None
            refused: list[str] = []
            best = float(scores[order[0]])
            now = self._clock()
            for position in order:
                similarity = float(scores[position])
                if similarity < self.threshold:
                    break
                row = int(position) if rows is None else int(rows[position])
                entry = shelf.entries[row]
                if not entry.alive or (self.ttl is not None and now - entry.created > self.ttl):
                    continue
                facts = facts or extract_facts(prompt)
                reasons = conflicts(facts, entry.facts)
                if reasons:
                    refused.extend(r for r in reasons if r not in refused)
                    continue
                return SemanticLookup(entry.value, True, similarity, tuple(refused), entry.prompt)
            return SemanticLookup(similarity=best, refused_by=tuple(refused))

    def put(
        self, messages: Sequence[Mapping[str, Any]], value: Any, namespace: str | None = None
    ) -> None:
        """Store ``value`` as the answer to ``messages`` (replacing the same prompt's)."""
        key, prompt = self._split(messages, namespace)
        if not prompt.strip():
            return
        words = canonical_words(prompt)
        vector = self._vector(prompt, words)
        entry = _Entry(prompt, extract_facts(prompt), value, self._clock(), prompt, tuple(words))
        with self._lock:
            shelf = self._shelves.setdefault(key, _Shelf(len(vector)))
            existing = shelf.by_prompt.get(prompt)
            if existing is not None and shelf.entries[existing].alive:
                old = shelf.entries[existing]
                old.value, old.created = value, entry.created
                return
            shelf.add(entry, vector)
            self._order.append((key, entry))
            self._alive += 1
            while self._alive > self.max_entries:
                self._evict_oldest()

    def _evict_oldest(self) -> None:
        key, entry = self._order.popleft()
        shelf = self._shelves.get(key)
        if shelf is None or not entry.alive:
            return
        entry.alive = False
        shelf.dead += 1
        self._alive -= 1
        if shelf.dead == len(shelf.entries):
            del self._shelves[key]
        elif shelf.dead > max(64, len(shelf.entries) // 2):
            shelf.compact()

    def _vector(self, prompt: str, words: Sequence[str]) -> np.ndarray:
        if self._local is not None:
            return self._local.embed_words(words)
        vector = np.asarray(self._embed([prompt]), dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def _split(
        self, messages: Sequence[Mapping[str, Any]], namespace: str | None
    ) -> tuple[tuple[str, str], str]:
        """((namespace, context digest), latest message text).

        The text is empty (nothing is cached or looked up) when the latest message carries
        more than text, such as an image: the text alone does not say what is asked.
        """
        space = namespace if namespace is not None else self.namespace
        if not messages or _non_text_parts(messages[-1]):
            return (space, ""), ""
        context = [
            [
                m.get("role"),
                m.get("name"),
                " ".join(message_text(m).split()),
                _non_text_parts(m),
            ]
            for m in messages[:-1]
        ]
        context.append([messages[-1].get("role"), messages[-1].get("name")])
        digest = hashlib.sha256(json.dumps(context, default=str).encode()).hexdigest()
        return (space, digest), message_text(messages[-1])


def _non_text_parts(message: Mapping[str, Any]) -> list[Any]:
    """Images, audio and other non-text content parts, compared exactly in the context."""
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        part for part in content if not (isinstance(part, Mapping) and part.get("type") == "text")
    ]
