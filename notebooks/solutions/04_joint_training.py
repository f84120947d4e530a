"""Solutions to the exercises of notebooks/04_joint_training.ipynb (see tools/solutions.py)."""

# %% exercise-04-a
from accelerate import init_empty_weights

from svdinst.models.layouts import SDLayoutConfig, sd_layout_modules
from svdinst.spectral import spectral_shift_layout
from svdinst.training.inversion import ImageToToken, ImageToTokenConfig, count_parameters

with init_empty_weights():
    sd14_unet = sd_layout_modules(SDLayoutConfig.sd14())["unet"]
shifts = sum(k for _, k in spectral_shift_layout(sd14_unet).values())
answer_04a = count_parameters(ImageToToken(ImageToTokenConfig())) + shifts

# %% exercise-04-b
from svdinst.training.runs import shift_magnitudes

norms = shift_magnitudes(runs["svd-inst"])
total = sum(v**2 for v in norms.values())
answer_04b = sum(v**2 for name, v in norms.items() if ".attn2." in name) / total
