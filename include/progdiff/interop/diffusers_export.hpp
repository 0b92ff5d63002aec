#pragma once
// Exporting a progdiff U-Net of uniform widths as a diffusers UNet2DModel folder that
// UNet2DModel.from_pretrained loads unchanged (config.json + diffusion_pytorch_model.safetensors
// in float32), optionally inside a pipeline folder (model_index.json, unet/, scheduler/):
//
//   interop::export_diffusers_unet(net, "out/unet-folder");
//   interop::export_diffusers_pipeline(net, schedule.config(), "out/ddpm-pipeline");
//
// A width table diffusers cannot express (a pruned net) is a ConfigError naming the layer.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/tensor.hpp"
#include "progdiff/interop/diffusers_config.hpp"
#include "progdiff/interop/diffusers_names.hpp"
#include "progdiff/interop/diffusers_scheduler.hpp"
#include "progdiff/interop/diffusers_structure.hpp"
#include "progdiff/io/safetensors.hpp"

namespace progdiff::interop {

/// The UNet2DModel state dict of `net` (float32, diffusers' names and layouts).
template <class Net>
io::SafetensorsFile diffusers_state_dict(Net& net) {
  io::SafetensorsFile file;
  file.metadata["format"] = "pt";  // what save_pretrained records
  net.visit_parameters(
      [&](const std::string& name, auto& param) {
        const DiffusersTensorMap m = diffusers_tensor_map(name, Net::spec::level_count, /*flip=*/false);
        const auto host = param.value.to_host();
        const std::vector<float> values(host.begin(), host.end());
        const Shape& s = param.value.shape();
        std::vector<std::int64_t> shape(s.begin(), s.end());
        if (m.layout == DiffusersLayout::Linear1x1) shape.resize(2);
        if (m.layout != DiffusersLayout::SplitQkv) {
          file.put_as(m.diffusers.front(), shape, values, io::DType::F32);
          return;
        }
        shape[0] /= 3;  // q, k, v: consecutive thirds of the rows
        if (shape.size() == 4) shape.resize(2);
        const std::size_t part = values.size() / 3;
        for (std::size_t k = 0; k < 3; ++k)
          file.put_as(m.diffusers[k], shape, std::span<const float>(values.data() + k * part, part), io::DType::F32);
      },
      "");
  return file;
}

/// Writes `net` as a UNet2DModel folder `dir` (created if needed).
template <class Net>
void export_diffusers_unet(Net& net, const std::filesystem::path& dir) {
  const DiffusersUNetConfig config = diffusers_config_of(net);  // refuses before anything is written
  io::SafetensorsFile weights = diffusers_state_dict(net);
  std::filesystem::create_directories(dir);
  weights.source = (dir / "diffusion_pytorch_model.safetensors").string();
  io::write_safetensors(dir / "diffusion_pytorch_model.safetensors", weights);
  write_json_file(dir / "config.json", to_json(config));
}

/// Writes a DDPMPipeline folder: model_index.json, unet/ (export_diffusers_unet) and
/// scheduler/scheduler_config.json for `schedule` (refused with the reason when diffusers cannot
/// express it). A LearnedVariance net's scheduler has variance_type "learned_range", which is
/// how diffusers reads its second C outputs (IDDPM's interpolation between beta~_t and beta_t).
template <class Net>
void export_diffusers_pipeline(Net& net, const schedule::ScheduleConfig& schedule, const std::filesystem::path& dir) {
  nlohmann::json scheduler = diffusers_scheduler_config(schedule, "DDPMScheduler");
  if constexpr (Net::spec::learned_variance) scheduler["variance_type"] = "learned_range";
  export_diffusers_unet(net, dir / "unet");
  write_json_file(dir / "scheduler" / "scheduler_config.json", scheduler);
  nlohmann::json index;
  index["_class_name"] = "DDPMPipeline";
  index["_diffusers_version"] = kDiffusersVersion;
  index["scheduler"] = {"diffusers", "DDPMScheduler"};
  index["unet"] = {"diffusers", "UNet2DModel"};
  write_json_file(dir / "model_index.json", index);
}

}  // namespace progdiff::interop
