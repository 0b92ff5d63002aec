// A network with forward(x, t) and backward(dy) is wrapped as D(x; sigma).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/model/edm_preconditioning.hpp"

struct WithNoiseInput {
  using value_type = float;
  using backend_type = progdiff::backend::Cpu;
  progdiff::Tensor<float> forward(const progdiff::Tensor<float>& x, const progdiff::Tensor<float>&) { return x; }
  progdiff::Tensor<float> backward(const progdiff::Tensor<float>& dy) { return dy; }
  void set_training(bool) {}
};

int main() {
  progdiff::model::EdmPreconditioned<WithNoiseInput> d(WithNoiseInput{}, progdiff::schedule::EdmSigma(1000));
  return d.prediction_type() == progdiff::schedule::PredictionType::Sample ? 0 : 1;
}
