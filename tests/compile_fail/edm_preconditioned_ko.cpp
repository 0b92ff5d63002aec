// expect: EdmPreconditioned: the wrapped model needs forward(x, t) and backward(dy)
// A type whose forward takes no noise level cannot be preconditioned: c_noise has nowhere to go.
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/model/edm_preconditioning.hpp"

struct NoNoiseInput {
  using value_type = float;
  using backend_type = progdiff::backend::Cpu;
  progdiff::Tensor<float> forward(const progdiff::Tensor<float>& x) { return x; }
  progdiff::Tensor<float> backward(const progdiff::Tensor<float>& dy) { return dy; }
};

static_assert(sizeof(progdiff::model::EdmPreconditioned<NoNoiseInput>) > 0);
int main() { return 0; }
