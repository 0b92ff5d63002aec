#pragma once
// Timestep-grouped models: the GroupedModel concept, Progressive (one denoiser per group),
// IntervalRouted (shared-encoder multi-decoder U-Nets and separate experts), checkpoint
// descriptions, EDM's preconditioning and its variance-preserving view.
#include "progdiff/model/description.hpp"
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/model/grouped_model.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/model/vp_view_of_edm.hpp"
