"""Solutions to the exercises of notebooks/03_textual_inversion.ipynb (see tools/solutions.py)."""

# %% exercise-03-a
import torch


def add_noise(x0, noise, t):
    """q(x_t | x_0): x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε."""
    alpha_bar = scheduler.alphas_cumprod[t]
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise


answer_03a = add_noise

# %% exercise-03-b
from svdinst.formats.run_folder import RunFolder
from svdinst.training.inversion import load_image_to_token

module = load_image_to_token(RunFolder(run).image_to_token).eval()  # eval: dropout off
d = module.config.image_dim
with torch.no_grad():
    b = module(torch.zeros(1, 1, d))[0]  # f(0)
    A = (module(torch.eye(d)[:, None]) - b).T  # column i: f(e_i) − f(0)
answer_03b = (A, b)
