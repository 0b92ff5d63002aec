#pragma once
// What a denoiser predicts: the noise, the clean sample, or the velocity v. Its own header so
// that samplers and models name it without the diffusers JSON reader (runtime_schedule.hpp).

namespace progdiff::schedule {

enum class PredictionType { Epsilon, Sample, VPrediction };

}  // namespace progdiff::schedule
