#pragma once
// The diffusion losses, independent of any model and trainer: training pairs and the weighted
// MSE for epsilon, x0 and v prediction, their weightings (min-SNR, EDM), and IDDPM's hybrid loss
// with the variational-bound terms it is built from.
#include "progdiff/loss/diffusion_loss.hpp"
#include "progdiff/loss/hybrid_loss.hpp"
#include "progdiff/loss/loss_weighting.hpp"
#include "progdiff/loss/vlb_terms.hpp"
