"""Solutions to the exercises of notebooks/01_data.ipynb.

Each ``# %% exercise-<id>`` section replaces that exercise's cell in the solved copy that
``python tools/solutions.py solve`` writes (CI runs the solved notebooks; ``make test``).
"""

# %% exercise-01-a
import numpy as np

used = len(np.unique(np.asarray(stages["posterised"]).reshape(-1, 3), axis=0))
answer_01a = (used, len(palette_family(MuralConfig())[0]))

# %% exercise-01-b
# Every level of the encoder but the last halves the image.
answer_01b = 512 // 2 ** (len(sd14["vae"].config.block_out_channels) - 1)
