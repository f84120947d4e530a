"""Solutions to the exercises of notebooks/05_stylize.ipynb (see tools/solutions.py)."""

# %% exercise-05-a
sched = main.pipe.scheduler
sched.set_timesteps(config.steps)
kept = min(int(config.steps * config.strength), config.steps)  # the last ⌊N·s⌋ timesteps
answer_05a = int(sched.timesteps[config.steps - kept])

# %% exercise-05-b
answer_05b = float(sched.alphas_cumprod[answer_05a]) ** 0.5
