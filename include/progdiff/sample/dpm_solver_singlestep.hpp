#pragma once
// Single-step DPM-Solver++ of orders 1 to 3 (Lu et al. 2022, DPM-Solver Algorithms 1 and 2 in
// the data-prediction form of DPM-Solver++), laid out as diffusers' DPMSolverSinglestepScheduler:
// the timesteps are grouped into solver steps of orders [1, 2, 3, 1, 2, 3, ..., lower orders at
// the end], each grid point inside a group is an intermediate point, and a step of order k
// starts from the sample saved at its group's first point s and uses the k model evaluations
// of the group (D_s, D_1, D_2):
//   order 1:  x_t = sigma_t / sigma_s x_s - alpha_t (e^-h - 1) D_s
//   order 2:  x_t = sigma_t / sigma_s x_s - alpha_t (e^-h - 1) (D_s + (D_1 - D_s) / (2 r1))
//   order 3:  x_t = sigma_t / sigma_s x_s - alpha_t (e^-h - 1) D_s
//                   + alpha_t ((e^-h - 1) / h + 1) (D_2 - D_s) / r2
// with h = lambda_t - lambda_s and r_i = (lambda_i - lambda_s) / h. A step to sigma = 0 is
// first order (the higher-order formulas divide by r = 0 there).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "progdiff/sample/dpm_solver.hpp"

namespace progdiff::sample {

/// The order of each step, diffusers' get_order_list with lower_order_final.
inline std::vector<int> singlestep_orders(std::int64_t steps, int order) {
  std::vector<int> out;
  auto repeat = [&](std::initializer_list<int> pattern, std::int64_t times) {
    for (std::int64_t i = 0; i < times; ++i) out.insert(out.end(), pattern);
  };
  if (order == 3) {
    if (steps % 3 == 0) {
      repeat({1, 2, 3}, steps / 3 - 1);
      out.insert(out.end(), {1, 2, 1});
    } else if (steps % 3 == 1) {
      repeat({1, 2, 3}, steps / 3);
      out.push_back(1);
    } else {
      repeat({1, 2, 3}, steps / 3);
      out.insert(out.end(), {1, 2});
    }
  } else if (order == 2) {
    if (steps % 2 == 0) {
      repeat({1, 2}, steps / 2 - 1);
      out.insert(out.end(), {1, 1});
    } else {
      repeat({1, 2}, steps / 2);
      out.push_back(1);
    }
  } else {
    repeat({1}, steps);
  }
  return out;
}

class DpmSolverSinglestep {
 public:
  DpmSolverSinglestep(std::vector<double> alphas_cumprod, std::vector<std::int64_t> timesteps, int order = 2)
      : plan_(std::move(alphas_cumprod), std::move(timesteps), "DpmSolverSinglestep"), order_(order) {
    require(order >= 1 && order <= 3, "DpmSolverSinglestep: order must be 1, 2 or 3, got " + std::to_string(order));
    orders_ = singlestep_orders(plan_.steps(), order);
  }
  template <schedule::NoiseSchedule S>
  static DpmSolverSinglestep from_schedule(const S& s, std::int64_t steps, int order = 2) {
    return DpmSolverSinglestep(sample::alphas_cumprod(s), dpm_solver_timesteps(s.size(), steps), order);
  }

  std::int64_t evaluations() const { return plan_.steps(); }
  // history 0: the sample at the group's start; 1 and 2: the last two x0 predictions
  int history_size() const { return 3; }
  double initial_scale() const { return 1.0; }
  ModelCall model_call(std::int64_t e) const { return {1.0, static_cast<double>(plan_.timestep(e))}; }
  int order_at(std::int64_t e) const { return orders_.at(static_cast<std::size_t>(e)); }

  StepWeights weights(std::int64_t e, PredictionType p) const {
    const auto x0 = vp_prediction(plan_.alpha_bar(plan_.timestep(e)), p).x0;
    const int order = order_at(e);
    constexpr int kStart = kHistoryTerm, kLast = kHistoryTerm + 1, kBeforeLast = kHistoryTerm + 2;
    StepWeights w;
    w.history[0] = order == 1 ? keep(kSampleTerm) : keep(kStart);
    add_prediction(w.history[1], 1.0, x0);
    w.history[2] = keep(kLast);

    const double sigma_t = plan_.sigma(e + 1);
    if (sigma_t == 0.0) {
      add_prediction(w.x, 1.0, x0);
      return w;
    }
    const detail::VpPoint s(plan_.sigma(e - (order - 1))), t(sigma_t), here(plan_.sigma(e));
    const double h = t.lambda - s.lambda;
    const double c = -t.alpha * std::expm1(-h);  // weight of D_s
    const int start = order == 1 ? kSampleTerm : kStart;
    w.x[start] = t.sigma / s.sigma;
    if (order == 1) {
      add_prediction(w.x, c, x0);
    } else if (order == 2) {  // D_s = history 1 (previous output), D_1 = current
      const double r = (here.lambda - s.lambda) / h;
      add_prediction(w.x, 0.5 * c / r, x0);
      w.x[kLast] = c - 0.5 * c / r;
    } else {  // D_s = history 2, D_2 = current
      const double r = (here.lambda - s.lambda) / h;
      const double c2 = t.alpha * (std::expm1(-h) / h + 1.0) / r;
      add_prediction(w.x, c2, x0);
      w.x[kBeforeLast] = c - c2;
    }
    return w;
  }

  template <class T = float, class B = backend::Cpu, class D>
  Tensor<T, B> sample(D& denoiser, Shape shape, std::uint64_t seed, std::uint64_t first_id = 0) const {
    return generate<T, B>(*this, denoiser, shape, seed, first_id);
  }

  const DpmPlan& plan() const { return plan_; }
  int order() const { return order_; }

 private:
  DpmPlan plan_;
  int order_;
  std::vector<int> orders_;
};

}  // namespace progdiff::sample
