"""earlylin: check, by experiment, that early gradient descent on a neural network follows a linear model.

Hu, Xiao, Adlam & Pennington, *The Surprising Simplicity of the Early-Time Learning Dynamics of
Neural Networks* (NeurIPS 2020, arXiv:2006.14599). The public surface is small:

- :mod:`earlylin.verify`      the command line (``python -m earlylin.verify``): two-layer, 1D CNN, CIFAR
- :mod:`earlylin.kernel`      the kernel-bound command line (``python -m earlylin.kernel``)
- :func:`earlylin.experiment.run_two_layer`  one run as a plain-data record
- :mod:`earlylin.activations` φ, φ′ and the Gaussian constants ζ, ν, ϑ₀, ϑ₁, ϑ₂
- :mod:`earlylin.linear`      the predicted linear models ψ₁, ψ₂ and their closed-form GD trajectory
"""

__version__ = "0.1.0"
