"""Tier 0 (one autograd.grad per query) against torch's own full Jacobian."""
import torch

from mind_engine import MindNet
from mind_engine.engine.oracle import Tier0

TINY = dict(encoder=(3, 3, 4, 4, 4), decoder=(4, 4, 4, 3, 3))


def test_tier0_rows_are_rows_of_the_full_jacobian():
    torch.manual_seed(0)
    net = MindNet(**TINY).double()
    for p in net.parameters():  # random non-trivial slopes and biases so every branch matters
        p.data.uniform_(-0.5, 0.5)
    i1, i3 = torch.rand(2, 1, 3, 32, 32, dtype=torch.float64)
    jac1, jac3 = torch.autograd.functional.jacobian(lambda a, b: net(a, b), (i1, i3))
    # jac: (1, 3, H, W, 1, 3, H, W); a row is the channel sum at one output pixel
    queries = torch.tensor([[0, 0], [31, 31], [5, 17], [31, 0], [16, 8]])
    g1, g3 = Tier0(net, i1, i3).rows(queries)
    for k, (x, y) in enumerate(queries.tolist()):
        torch.testing.assert_close(g1[k], jac1[0, :, y, x].sum(0)[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(g3[k], jac3[0, :, y, x].sum(0)[0], rtol=1e-10, atol=1e-12)
    assert g1.abs().sum() > 0 and g3.abs().sum() > 0
