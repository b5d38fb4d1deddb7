"""Convert every set in ../shared/data into the brain's JSONL format (skips when absent).

Usage: python scripts/convert_shared.py [--shared ../shared/data] [--out build/brain-data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llmrouter.brain.convert import (  # noqa: E402
    convert_llmrouter,
    convert_math,
    convert_routellm,
    convert_routerbench,
)
from llmrouter.brain.dataset import write_jsonl  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "brain-data")
    args = parser.parse_args()
    shared: Path = args.shared
    if not shared.is_dir():
        print(f"skipped: {shared} is absent", file=sys.stderr)
        return 0
    out: Path = args.out
    routing = shared / "routing"
    written: dict[str, int] = {}
    if (routing / "routellm").is_dir():
        for name, records in convert_routellm(routing / "routellm").items():
            written[f"routellm_{name}"] = write_jsonl(records, out / f"routellm_{name}.jsonl")
    if (routing / "routerbench").is_dir():
        for name, records in convert_routerbench(routing / "routerbench").items():
            written[f"routerbench_{name}"] = write_jsonl(records, out / f"routerbench_{name}.jsonl")
    if (routing / "llmrouter" / "train.json").exists():
        records = convert_llmrouter(routing / "llmrouter")
        written["llmrouter"] = write_jsonl(records, out / "llmrouter.jsonl")
    math_file = shared / "difficulty" / "math" / "train.jsonl"
    if math_file.exists():
        written["math"] = write_jsonl(convert_math(math_file), out / "math.jsonl")
    for name, count in written.items():
        print(f"{name}: {count} records -> {out / (name + '.jsonl')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
