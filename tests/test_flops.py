import torch
from conftest import TINY
from flops import forward_flops
from torch.utils.flop_counter import FlopCounterMode

from showo import ShowoModel


def _attention_flops(batch, new_tokens, context):
    # FlopCounterMode does not see the CPU fused attention kernel; count scores + weighted sum here
    return batch * TINY.llm.num_layers * 2 * 2 * new_tokens * context * TINY.llm.hidden_size


@torch.no_grad()
def test_forward_flops_equal_torch_flop_counter():
    model = ShowoModel(TINY).eval()
    ids = torch.randint(0, TINY.text_vocab_size, (2, 40))
    with FlopCounterMode(display=False) as counter:
        model(ids)
    assert forward_flops(TINY, batch=2, new_tokens=40) == counter.get_total_flops() + _attention_flops(2, 40, 40)


@torch.no_grad()
def test_forward_flops_with_cache_equal_torch_flop_counter():
    model = ShowoModel(TINY).eval()
    cache = model.new_cache(batch_size=1, max_length=64)
    model(torch.randint(0, TINY.text_vocab_size, (1, 30)), cache=cache)
    with FlopCounterMode(display=False) as counter:
        model(torch.randint(0, TINY.text_vocab_size, (1, 10)), cache=cache)
    expected = counter.get_total_flops() + _attention_flops(1, 10, 40)
    assert forward_flops(TINY, batch=1, new_tokens=10, context=40) == expected
