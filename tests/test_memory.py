"""The sidecar's memory hygiene: large blocks stay mapped, freed heap goes back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc malloc behaviour (Linux)"
)

# Free one 4 MiB block, then hold fifty 200 KiB blocks: with glibc's sliding threshold the
# free raises it to 4 MiB and the small blocks come from the heap (~10 MB of heap); with
# the threshold pinned at 128 KiB they are mapped on their own and the heap stays put.
_PROBE = textwrap.dedent(
    """
    import sys
    from llmrouter.memory import map_large_allocations

    def heap_kb():
        inside = False
        for line in open("/proc/self/smaps"):
            if not line.split()[0].endswith(":"):
                inside = line.rstrip().endswith("[heap]")
            elif inside and line.startswith("Rss:"):
                return int(line.split()[1])
        return 0

    if sys.argv[1] == "pinned":
        map_large_allocations()
    big = bytearray(4 << 20)
    del big
    before = heap_kb()
    held = [bytearray(200 << 10) for _ in range(50)]
    print(heap_kb() - before)
    """
)


def _heap_growth_kb(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def test_pinned_threshold_keeps_large_blocks_off_the_heap() -> None:
    sliding = _heap_growth_kb("default")
    if sliding < 5_000:
        pytest.skip("this C library does not slide its mmap threshold (not glibc)")
    assert _heap_growth_kb("pinned") < 1_000
