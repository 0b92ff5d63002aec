// Separate experts whose constructor takes the number of experts: accepted.
#include "progdiff/unet/separate_experts.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::SeparateExperts<u::UNet<u::Levels<1, 2>>, u::kRunTimeCount>) > 0 ? 0 : 1; }
