"""svdinst: SVD-InST photo → mural-style translation on Stable Diffusion, as a course and kit.

The notebooks in ``notebooks/`` name the version of this package they were written for
(``svdinst.__version__``); the package follows semantic versioning so they keep working.
"""

__version__ = "0.2.0"

from svdinst.errors import SvdinstError

__all__ = ["SvdinstError", "__version__"]
