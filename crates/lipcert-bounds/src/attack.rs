//! Adversarial attacks (FGSM, PGD): the upper side of robustness.
