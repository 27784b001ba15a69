"""Derived seeds: every random stream gets its own seed from (base seed, names), never a global."""

import hashlib

import torch


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed from a base seed and any names (stable across runs and machines)."""
    text = "/".join(str(x) for x in (seed, *names))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(seed: int, *names: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *names))
