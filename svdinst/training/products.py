"""What a finished training run leaves behind: the final embedding, the image→token module and
the spectral shifts δ (the files :class:`svdinst.formats.run_folder.RunFolder` names).

Every tensor is checked to be finite before it is written: a NaN run must fail here, not later as
black images from ``svdinst stylize``.
"""

from __future__ import annotations

import torch
from torch import nn

from svdinst.formats.checkpoint import check_finite
from svdinst.formats.run_folder import RunFolder
from svdinst.models.loading import Components
from svdinst.spectral import save_spectral_shifts
from svdinst.training.config import TrainConfig
from svdinst.training.inversion import save_image_to_token, save_learned_embeds


@torch.no_grad()
def write_outputs(
    config: TrainConfig,
    run: RunFolder,
    comps: Components,
    objective: nn.Module,
    names: list[str],
) -> None:
    """Write the run's products.

    Args:
        config (`TrainConfig`): the run's settings.
        run (`RunFolder`): where to write.
        comps (`Components`): the trained components (the UNet carries the shifts).
        objective (`DiffusionObjective`): the unwrapped loss module (its ``image_to_token``).
        names (`list[str]`): the style images' file names (``saved_token`` may name one).
    """
    weight = comps.text_encoder.get_input_embeddings().weight
    token_id = comps.tokenizer.convert_tokens_to_ids(config.placeholder_token)
    if objective.image_to_token is not None:
        module = objective.image_to_token.eval()
        # Stylizing needs only this vector: the module applied to the whole style image(s). The
        # mean over several images was never a training input (docs/DEVIATIONS.md).
        tokens = module(objective.image_features).float()
        mean = config.saved_token == "mean"
        vector = tokens.mean(0) if mean else tokens[names.index(config.saved_token)]
        weight[token_id] = vector.to(weight.dtype)
        save_image_to_token(run.image_to_token, module)
    save_learned_embeds(run.learned_embeds, config.placeholder_token, weight[token_id])
    if config.trains_shifts:
        shifts = {n: p for n, p in comps.unet.named_parameters() if p.requires_grad}
        check_finite(shifts, run.spectral_shifts)
        save_spectral_shifts(comps.unet, run.spectral_shifts, base_model=config.model)
