"""The transformers scorer's KV memory: one preallocated pool of token slots, paged one token a page.

Per layer, keys and values live in one tensor of shape [capacity, kv_heads, head_dim]. A
cached prefix is the list (a LongTensor) of the slots holding its tokens, so a child path is
its parent's slots plus its own new ones: siblings share their parent's KV and nothing is
copied to extend a path. Slot 0 stays zero; it pads rows.

A forward over a batch of paths with cached prefixes of lengths b_i and new tokens s_i:
  - each layer writes the new tokens' keys and values into fresh slots (`index_copy_`),
  - and reads each row back as [its b_i cached tokens, padding to B = max b_i, its new
    tokens, padding to W = max |s_i|] with one `index_select`,
the layout a DynamicCache past of width B would give, so transformers' ordinary 2-D mask
and explicit position_ids apply unchanged. Per layer that is one gather and one scatter for
the whole batch, where concatenating padded per-path tensors copied every prefix in and out.

The pool starts at 65,536 tokens, allocated but not written (the memory is mapped as slots
fill), and doubles when full up to `max_tokens`; past that, the least recently used prefixes
are forgotten and their slots reused (slots some kept prefix still holds stay).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class KVPool:
    def __init__(self, max_tokens: int = 1 << 18, initial_tokens: int = 1 << 16, device: str = "cpu"):
        self.max_tokens, self.device = max_tokens, device
        self.capacity = min(initial_tokens, max_tokens)
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []  # allocated at the first write, per layer
        self.prefixes: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()  # token ids -> their slots, LRU order
        self.free = torch.arange(1, self.capacity, device=device)

    def __len__(self) -> int:
        return len(self.prefixes)

    def clear(self) -> None:
        self.prefixes.clear()
        self.free = torch.arange(1, self.capacity, device=self.device)

    def lookup(self, ids: tuple[int, ...]) -> torch.Tensor | None:
        slots = self.prefixes.get(ids)
        if slots is not None:
            self.prefixes.move_to_end(ids)
        return slots

    def remember(self, ids: tuple[int, ...], slots: torch.Tensor) -> None:
        self.prefixes[ids] = slots
        self.prefixes.move_to_end(ids)

    def allocate(self, count: int, keep: list[torch.Tensor]) -> torch.Tensor:
        """`count` free slots; `keep`: slots that must survive (the batch's cached prefixes)."""
        while len(self.free) < count and self.capacity < self.max_tokens:
            self._grow()
        while len(self.free) < count and self.prefixes:
            self._forget_oldest(keep)
        if len(self.free) < count:
            raise MemoryError(f"the PRM's KV pool holds {self.max_tokens} tokens; one batch needs {count} new ones: raise max_tokens")
        slots, self.free = self.free[:count], self.free[count:]
        return slots

    def _grow(self) -> None:
        old, self.capacity = self.capacity, min(2 * self.capacity, self.max_tokens)
        self.layers = [(self._resized(k), self._resized(v)) for k, v in self.layers]
        self.free = torch.cat([self.free, torch.arange(old, self.capacity, device=self.device)])

    def _resized(self, tensor: torch.Tensor) -> torch.Tensor:
        bigger = tensor.new_empty((self.capacity, *tensor.shape[1:]))
        bigger[: len(tensor)] = tensor
        return bigger

    def _forget_oldest(self, keep: list[torch.Tensor]) -> None:
        """Forget the older half of the prefixes; free every slot no remaining prefix (or `keep`) holds."""
        for _ in range(max(1, len(self.prefixes) // 2)):
            self.prefixes.popitem(last=False)
        held = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        held[0] = True
        for slots in list(self.prefixes.values()) + keep:
            held[slots] = True
        self.free = torch.nonzero(~held).flatten()

    def tensors(self, layer: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `layer`'s key and value pools, allocated from the first keys written. Uninitialized
        (memory is only mapped when written): a row reads slots it wrote, or slot 0, which is zero."""
        while len(self.layers) <= layer:
            shape = (self.capacity, like.shape[1], like.shape[3])  # like: [batch, kv_heads, tokens, head_dim]
            keys, values = like.new_empty(shape), like.new_empty(shape)
            keys[0], values[0] = 0, 0
            self.layers.append((keys, values))
        return self.layers[layer]


class PooledLayer(CacheLayerMixin):
    """One layer of a forward: write the batch's new KV into the pool, return every row's past + new."""

    def __init__(self, batch: "PooledBatch", layer: int):
        super().__init__()
        self.pool, self.layer, self.batch = batch.pool, layer, batch

    def lazy_initialization(self, key_states, value_states) -> None:
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.pool.tensors(self.layer, key_states)
        b = self.batch
        n, heads, width, dim = key_states.shape
        keys.index_copy_(0, b.new_slots, key_states.transpose(1, 2)[b.new_mask])
        values.index_copy_(0, b.new_slots, value_states.transpose(1, 2)[b.new_mask])
        rows = (n, b.past + width, heads, dim)
        return keys.index_select(0, b.read).view(rows).transpose(1, 2), values.index_select(0, b.read).view(rows).transpose(1, 2)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.batch.past + query_length, 0

    def get_seq_length(self) -> int:
        return self.batch.past

    def get_max_length(self) -> int:
        return -1


class PooledBatch:
    """The slots of one forward: rows with cached prefixes `pasts[i]` (slot tensors) and `lengths[i]` new tokens.

    `rows_slots[i]` afterwards holds row i's whole path (past + new), to remember its prefixes under."""

    def __init__(self, pool: KVPool, pasts: list[torch.Tensor], lengths: list[int]):
        self.pool = pool
        self.past, width = max(len(p) for p in pasts), max(lengths)
        new = pool.allocate(sum(lengths), keep=pasts)
        device = new.device
        self.new_mask = torch.tensor([[t < n for t in range(width)] for n in lengths], device=device)
        self.new_slots = new  # row-major over the valid new tokens: the order of `tensor[new_mask]`
        zero = torch.zeros(max(self.past, width), dtype=torch.long, device=device)
        read, self.rows_slots, start = [], [], 0
        for past, n in zip(pasts, lengths):
            mine = new[start : start + n]
            start += n
            read += [past, zero[: self.past - len(past)], mine, zero[: width - n]]
            self.rows_slots.append(torch.cat([past, mine]))
        self.read = torch.cat(read)

    def cache(self, layers: int) -> Cache:
        return Cache(layers=[PooledLayer(self, layer) for layer in range(layers)])
