"""A set of record ids in little memory, for a load's duplicate check and its snapshot.

A Python set of ints costs about 90 bytes an id: 90 MB a million, growing with the
file. SIS ids mostly come in dense runs, so ids are kept by block of 2**16: a block
holds a small set until it has more than SPARSE ids, then a bitmap of 8 KiB (one
bit an id). A dense million ids take about 130 KiB; scattered ids cost what a set
costs, never more than about twice.
"""

from __future__ import annotations

from collections.abc import Iterator

BLOCK = 16  # ids per block: 2**BLOCK
SPARSE = 512  # a block's ids kept as a set up to this many (512 ids ~ 45 KiB > 8 KiB bitmap)
MASK = (1 << BLOCK) - 1


class IdSet:
    def __init__(self) -> None:
        self._blocks: dict[int, set[int] | bytearray] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, rid: int) -> bool:
        block = self._blocks.get(rid >> BLOCK)
        if block is None:
            return False
        if isinstance(block, set):
            return rid & MASK in block
        low = rid & MASK
        return bool(block[low >> 3] & (1 << (low & 7)))

    def add(self, rid: int) -> None:
        key, low = rid >> BLOCK, rid & MASK
        block = self._blocks.get(key)
        if block is None:
            self._blocks[key] = {low}
            self._len += 1
            return
        if isinstance(block, set):
            if low in block:
                return
            block.add(low)
            self._len += 1
            if len(block) > SPARSE:
                bits = bytearray(1 << (BLOCK - 3))
                for n in block:
                    bits[n >> 3] |= 1 << (n & 7)
                self._blocks[key] = bits
            return
        byte, bit = low >> 3, 1 << (low & 7)
        if not block[byte] & bit:
            block[byte] |= bit
            self._len += 1

    def __iter__(self) -> Iterator[int]:
        for key, block in self._blocks.items():
            base = key << BLOCK
            if isinstance(block, set):
                yield from (base | n for n in block)
                continue
            for byte, value in enumerate(block):
                if value:
                    yield from (base | (byte << 3 | b) for b in range(8) if value & (1 << b))
