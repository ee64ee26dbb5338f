import torch

from components.model.patch_embed import as_matmul
from components.train.stages import new_model
from tests.conftest import tiny_cfg


def test_patch_embedding_as_a_matrix_product_equals_the_convolution_and_keeps_its_weights(tmp_path):
    vlm = new_model(tiny_cfg(tmp_path))
    embed = vlm.model.model.visual.patch_embed
    rows = torch.randn(12, embed.proj.weight[0].numel(), requires_grad=True)
    conv = embed.proj(rows.view(-1, *embed.proj.weight.shape[1:])).view(12, -1)
    fast = embed(rows)  # DefectVLM made it a matrix product
    assert torch.allclose(fast, conv, atol=1e-5)
    (g_fast,) = torch.autograd.grad(fast.sum(), embed.proj.weight)
    (g_conv,) = torch.autograd.grad(conv.sum(), embed.proj.weight)
    assert torch.allclose(g_fast, g_conv, atol=1e-4)
    assert set(vlm.model.model.visual.state_dict()) >= {"patch_embed.proj.weight", "patch_embed.proj.bias"}


def test_a_module_that_is_not_a_patch_convolution_is_left_alone():
    assert not as_matmul(torch.nn.Linear(3, 3))
    odd = torch.nn.Module()
    odd.patch_embed = torch.nn.Module()
    odd.patch_embed.proj = torch.nn.Conv3d(3, 8, (2, 16, 16), stride=(1, 8, 8))
    assert not as_matmul(odd)
