// Every layer against PyTorch 1.13 float64 (fixtures from tools/fixtures/make_layer_fixtures.py,
// float32-exact inputs and parameters, float64 results): output, input gradients and every
// parameter gradient, every element within tol of the tensor's scale:
// max|a - b| <= tol * max(1, max|b|), with tol = 1e-4 for float (the required precision) and
// 1e-12 for double (rounding only: a float constant or float intermediate in a double path
// shows up as ~1e-8).
#include <doctest/doctest.h>

#include <string>
#include <type_traits>
#include <vector>

#include "layer_support.hpp"
#include "progdiff/nn/attention_block.hpp"
#include "progdiff/nn/conv2d.hpp"
#include "progdiff/nn/downsample.hpp"
#include "progdiff/nn/dropout.hpp"
#include "progdiff/nn/group_norm.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/res_block.hpp"
#include "progdiff/nn/silu.hpp"
#include "progdiff/nn/timestep_embedding.hpp"
#include "progdiff/nn/upsample.hpp"

namespace progdiff_tests_layer_fixture {

namespace {

using namespace layer_test;
namespace nn = progdiff::nn;

template <class T>
constexpr double kTolerance = std::is_same_v<T, float> ? 1e-4 : 1e-12;

/// Loads the parameters, runs forward on "x" and backward on "dy", and checks "y", "dx" and
/// every "grad.<name>".
template <class T, class L>
void check_unary_layer(L& layer, const progdiff::io::SafetensorsFile& f) {
  progdiff::nn::check_layer<L>();
  load_parameters<T>(layer, f);
  const auto x = fixture_tensor<T>(f, "x");
  const auto y = layer.forward(x);
  CHECK(layer.output_shape(x.shape()) == y.shape());
  check_close<T>(y, fixture_tensor<T>(f, "y"), kTolerance<T>, f.source + " output");
  const auto dx = layer.backward(fixture_tensor<T>(f, "dy"));
  check_close<T>(dx, fixture_tensor<T>(f, "dx"), kTolerance<T>, f.source + " input gradient");
  check_parameter_grads<T>(layer, f, kTolerance<T>);
}

template <class T>
void check_conv2d(const std::string& name) {
  const auto f = read_layer_fixture(name);
  CHECK(f.metadata.at("format_version") == "2");
  nn::Conv2d<T, Cpu> layer(nn::Conv2dConfig{meta_int(f, "in_channels"), meta_int(f, "out_channels"),
                                            meta_int(f, "kernel"), meta_int(f, "stride"), meta_int(f, "padding"),
                                            true});
  check_unary_layer<T>(layer, f);
}

}  // namespace

TEST_CASE_TEMPLATE("Conv2d matches PyTorch", T, float, double) {
  for (const char* c : {"conv2d_3x3_pad1", "conv2d_1x1", "conv2d_3x3_stride2"}) {
    SUBCASE(c) { check_conv2d<T>(c); }
  }
}

TEST_CASE_TEMPLATE("Linear matches PyTorch", T, float, double) {
  for (const char* c : {"linear_5to7", "linear_8to3"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::Linear<T, Cpu> layer(nn::LinearConfig{meta_int(f, "in_features"), meta_int(f, "out_features"), true});
      check_unary_layer<T>(layer, f);
    }
  }
}

TEST_CASE_TEMPLATE("GroupNorm matches PyTorch", T, float, double) {
  for (const char* c : {"group_norm_g3_c9", "group_norm_g1_c5"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::GroupNorm<T, Cpu> layer(
          nn::GroupNormConfig{meta_int(f, "groups"), meta_int(f, "channels"), meta_double(f, "eps")});
      check_unary_layer<T>(layer, f);
    }
  }
}

TEST_CASE_TEMPLATE("SiLU matches PyTorch", T, float, double) {
  for (const char* c : {"silu_nchw", "silu_rows"}) {
    SUBCASE(c) {
      nn::SiLU<T, Cpu> layer;
      check_unary_layer<T>(layer, read_layer_fixture(c));
    }
  }
}

TEST_CASE_TEMPLATE("Dropout at p = 0 and in evaluation mode matches PyTorch", T, float, double) {
  for (const char* c : {"dropout_p0_train", "dropout_eval"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::Dropout<T, Cpu> layer(nn::DropoutConfig{meta_double(f, "p"), 1234});
      layer.set_training(meta_int(f, "training") != 0);
      check_unary_layer<T>(layer, f);
    }
  }
}

TEST_CASE_TEMPLATE("TimestepEmbedding matches PyTorch", T, float, double) {
  for (const char* c : {"timestep_embedding_ddpm", "timestep_embedding_odd_shift0"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::TimestepEmbedding<T, Cpu> layer(nn::TimestepEmbeddingConfig{meta_int(f, "dim"), meta_int(f, "hidden"),
                                                                      meta_int(f, "out"), meta_double(f, "max_period"),
                                                                      meta_double(f, "shift")});
      load_parameters<T>(layer, f);
      const auto t = fixture_tensor<T>(f, "t");
      const auto y = layer.forward(t);
      CHECK(layer.output_shape(t.shape()) == y.shape());
      check_close<T>(y, fixture_tensor<T>(f, "y"), kTolerance<T>, f.source + " output");
      layer.backward(fixture_tensor<T>(f, "dy"));
      check_parameter_grads<T>(layer, f, kTolerance<T>);
    }
  }
}

TEST_CASE_TEMPLATE("AttentionBlock matches PyTorch", T, float, double) {
  for (const char* c : {"attention_block_c6_h1", "attention_block_c8_h2", "attention_block_c8_h4_16x12"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::AttentionBlock<T, Cpu> layer(nn::AttentionBlockConfig{meta_int(f, "channels"), meta_int(f, "heads"),
                                                                meta_int(f, "groups"), meta_double(f, "eps")});
      check_unary_layer<T>(layer, f);
    }
  }
}

TEST_CASE_TEMPLATE("Downsample matches PyTorch", T, float, double) {
  for (const char* c : {"downsample_c3to5_7x6", "downsample_c4_5x8"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::Downsample<T, Cpu> layer(nn::DownsampleConfig{meta_int(f, "in_channels"), meta_int(f, "out_channels")});
      check_unary_layer<T>(layer, f);
    }
  }
}

TEST_CASE_TEMPLATE("Upsample matches PyTorch", T, float, double) {
  for (const char* c : {"upsample_c3to5_3x4", "upsample_c4_2x5"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::Upsample<T, Cpu> layer(nn::UpsampleConfig{meta_int(f, "in_channels"), meta_int(f, "out_channels")});
      check_unary_layer<T>(layer, f);
    }
  }
}

TEST_CASE_TEMPLATE("ResBlock matches PyTorch", T, float, double) {
  for (const char* c : {"res_block_c4to6_skip", "res_block_c6_identity", "res_block_c3to9_g3"}) {
    SUBCASE(c) {
      const auto f = read_layer_fixture(c);
      nn::ResBlock<T, Cpu> layer(nn::ResBlockConfig{meta_int(f, "in_channels"), meta_int(f, "out_channels"),
                                                    meta_int(f, "temb_channels"), meta_int(f, "groups"),
                                                    meta_double(f, "eps"), meta_double(f, "dropout"), 99});
      load_parameters<T>(layer, f);
      const auto x = fixture_tensor<T>(f, "x");
      const auto y = layer.forward(x, fixture_tensor<T>(f, "temb"));
      CHECK(layer.output_shape(x.shape()) == y.shape());
      check_close<T>(y, fixture_tensor<T>(f, "y"), kTolerance<T>, f.source + " output");
      const auto grads = layer.backward(fixture_tensor<T>(f, "dy"));
      check_close<T>(grads.dx, fixture_tensor<T>(f, "dx"), kTolerance<T>, f.source + " dx");
      check_close<T>(grads.dtemb, fixture_tensor<T>(f, "dtemb"), kTolerance<T>, f.source + " dtemb");
      check_parameter_grads<T>(layer, f, kTolerance<T>);
    }
  }
}

}  // namespace progdiff_tests_layer_fixture
