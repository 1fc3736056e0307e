"""What a policy remembers beyond its observation: the memory designs (``policy/memory=...``)."""

from openclaw_rl.memory.designs import DESIGNS, Memory, MemoryConfig, build_memory

__all__ = ["DESIGNS", "Memory", "MemoryConfig", "build_memory"]
