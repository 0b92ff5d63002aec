#pragma once
#include "progdiff/core/inference_mode.hpp"

namespace progdiff::model {

/// A prediction's scope: the model in evaluation mode (dropout off) and the thread in inference
/// mode (no activations kept for backward) until the scope ends, when the model's training flag
/// is restored to what it was.
template <class Model>
class EvaluationScope {
 public:
  explicit EvaluationScope(Model& model) : model_(model), was_training_(model.training()) {
    model_.set_training(false);
  }
  ~EvaluationScope() { model_.set_training(was_training_); }
  EvaluationScope(const EvaluationScope&) = delete;
  EvaluationScope& operator=(const EvaluationScope&) = delete;

 private:
  Model& model_;
  bool was_training_;
  InferenceMode inference_;
};

}  // namespace progdiff::model
