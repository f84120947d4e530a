"""Solutions to the exercises of notebooks/07_metrics_and_report.ipynb (see tools/solutions.py)."""

# %% exercise-07-a
import numpy as np
from scipy import linalg

mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
covmean = linalg.sqrtm(s1 @ s2).real  # round-off can leave a tiny imaginary part
answer_07a = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

# %% exercise-07-b
d, m, n = f1.shape[1], len(f1), len(f2)
k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((f1, f1), (f2, f2), (f1, f2)))
answer_07b = float(
    (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    - 2 * k_xy.mean()
)
