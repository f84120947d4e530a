"""Solutions to the exercises of notebooks/02_svd_decomposition.ipynb (see tools/solutions.py)."""

# %% exercise-02-a
from accelerate import init_empty_weights

from svdinst.models.layouts import SDLayoutConfig, sd_layout_modules

with init_empty_weights():  # shapes only: nothing of SD-1.4's 3.4 GB UNet is allocated
    sd14_unet = sd_layout_modules(SDLayoutConfig.sd14())["unet"]
answer_02a = sum(
    min(m.weight.shape[0], m.weight[0].numel())
    for m in sd14_unet.modules()
    if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
)
print(f"SD-1.4's UNet: {answer_02a:,} spectral shifts")


# %% exercise-02-b
def shifted_weight(U, S, Vh, delta, scale):
    """W = U · diag(relu(σ + s·δ)) · Vᵀ; U * v scales U's columns, i.e. U @ diag(v)."""
    return (U * torch.relu(S + scale * delta)) @ Vh


answer_02b = shifted_weight
