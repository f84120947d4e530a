"""The training objective as one module: latent diffusion's noise-prediction loss.

LDM Eq. 2 (= DDPM Eq. 14): ``E_{z, ε, t} ‖ε − ε_θ(√ᾱ_t·z + √(1−ᾱ_t)·ε, t, c)‖²``, with the
condition ``c`` the CLIP text encoding of the prompt whose placeholder row comes from InST's
image→token module. One module, so DDP sees a single forward over every trainable part and the
graph step (:mod:`svdinst.training.graphed`) captures one call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiffusionObjective(nn.Module):
    """The loss as one module, so DDP sees a single forward over every trainable part.

    Args:
        unet (`UNet2DConditionModel`): with spectral shifts in the ``svdiff``/``svd-inst`` modes.
        text_encoder (`CLIPTextModel`): frozen; its token embedding carries the placeholder hook.
        scheduler (`DDPMScheduler`): the forward process q(z_t | z_0).
        injector (`PlaceholderInjector`): writes the placeholder embedding into the prompt.
        image_to_token (`ImageToToken` or `None`): InST's module (``None`` in ``svdiff``).
        image_features (`torch.Tensor` or `None`): CLIP features of each whole style image (the
            saved token is computed from them; with ``token_image="whole"`` also each step's).
    """

    def __init__(self, unet, text_encoder, scheduler, injector, image_to_token, image_features):
        super().__init__()
        self.unet, self.text_encoder, self.image_to_token = unet, text_encoder, image_to_token
        self.scheduler, self.injector = scheduler, injector
        self.register_buffer("image_features", image_features, persistent=False)
        self._fixed_cond: torch.Tensor | None = None

    def token_embedding(self, features: torch.Tensor | None) -> torch.Tensor | None:
        """The placeholder embedding per sample from its CLIP features (InST), or ``None``."""
        if self.image_to_token is None or features is None:
            return None
        return self.image_to_token(features)

    def encode_prompt(self, input_ids: torch.Tensor, embedding: torch.Tensor | None):
        if embedding is None:  # fixed prompt and frozen encoder: encode once
            if self._fixed_cond is None:
                with torch.no_grad():
                    self.injector.value = None
                    self._fixed_cond = self.text_encoder(input_ids[:1])[0]
            return self._fixed_cond.expand(input_ids.shape[0], -1, -1)
        self.injector.value = embedding
        try:
            return self.text_encoder(input_ids)[0]
        finally:
            self.injector.value = None

    def forward(self, latents, noise, timesteps, input_ids, features):
        embedding = self.token_embedding(features)
        cond = self.encode_prompt(input_ids, embedding)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.scheduler.config.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        dtype = self.unet.dtype
        pred = self.unet(noisy.to(dtype), timesteps, cond.to(dtype)).sample
        loss = F.mse_loss(pred.float(), target.float())
        return loss, embedding
