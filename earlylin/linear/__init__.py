"""The linear models the networks are compared with: features ψ of the predicted models (docs/theory.md §3,
§5.5), their closed-form GD trajectory (§3.2), the finite-width model (§4.2) and the fitted affine model (§5.4)."""
