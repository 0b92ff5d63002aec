// expect: SeparateExperts<Net, K> needs K >= 1 experts, or unet::kRunTimeCount
#include "progdiff/unet/separate_experts.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::SeparateExperts<u::UNet<u::Levels<1, 2>>, 0>) > 0 ? 0 : 1; }
