#pragma once

namespace progdiff {

namespace detail {
inline bool& inference_mode_flag() {
  thread_local bool enabled = false;
  return enabled;
}
}  // namespace detail

/// Whether forwards on this thread run in inference mode: layers then keep nothing for a
/// backward pass, so each activation is freed as soon as the next layer has read it.
inline bool inference_mode() { return detail::inference_mode_flag(); }

/// Inference mode for the guard's lifetime on the calling thread (it nests; the previous state
/// comes back on destruction). Sampling and evaluation use it: a sampler step's peak memory is
/// then a few activations rather than every layer's input. A backward after a forward run in
/// inference mode is an error, like one without any forward.
class InferenceMode {
 public:
  InferenceMode() : previous_(detail::inference_mode_flag()) { detail::inference_mode_flag() = true; }
  ~InferenceMode() { detail::inference_mode_flag() = previous_; }
  InferenceMode(const InferenceMode&) = delete;
  InferenceMode& operator=(const InferenceMode&) = delete;

 private:
  bool previous_;
};

/// Keeps `kept` for a backward pass, or, in inference mode, drops whatever was kept before.
template <class Tensor>
void keep_for_backward(Tensor& slot, const Tensor& kept) {
  if (inference_mode())
    slot.reset();
  else
    slot = kept;
}

}  // namespace progdiff
