#pragma once
// What the running x86 CPU is: vendor, family, model and brand string (CPUID), the data-cache
// sizes a core sees (from the OS), and the AVX-512 features the kernels use. The CPU kernels size
// their cache blocks from it, and kernel_choices.hpp keys a machine's measured choices by it, so
// a choice measured on one CPU is never applied on another.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace progdiff::backend::cpu {

struct CpuIdentity {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ... ("unknown" off x86)
  std::string brand;   // the processor's own name, as lscpu's "Model name"
  int family = 0;      // as lscpu prints it: AMD Zen 4 is 25, Zen 5 is 26, Intel Core and Xeon 6
  int model = 0;
  std::int64_t l1d_bytes = 0;  // per core
  std::int64_t l2_bytes = 0;   // per core
  std::int64_t l3_bytes = 0;   // per package, shared
  bool avx512f = false;
  bool avx512_bf16 = false;

  /// A file-name-safe key naming this CPU kind: vendor-family-model-brand.
  std::string key() const {
    std::string k = vendor + "-" + std::to_string(family) + "-" + std::to_string(model) + "-" + brand;
    for (char& c : k)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
        c = '_';
    return k;
  }
};

namespace detail {

/// The size of one cache level from sysfs ("48K", "1024K", "32M"), 0 if the file is absent.
inline std::int64_t sysfs_cache_bytes(int index) {
  std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
  std::int64_t value = 0;
  char unit = 0;
  if (!(in >> value)) return 0;
  in >> unit;
  if (unit == 'K') value *= 1024;
  if (unit == 'M') value *= 1024 * 1024;
  return value;
}

/// sysconf's size for a cache level (glibc reads CPUID), else sysfs's (index 0 is L1d, 2 is L2,
/// 3 is L3 on Linux).
inline std::int64_t cache_bytes(int sysconf_name, int sysfs_index) {
  const long bytes = sysconf(sysconf_name);
  return bytes > 0 ? bytes : sysfs_cache_bytes(sysfs_index);
}

}  // namespace detail

/// Reads the identity of the CPU this process runs on (a few CPUID queries and file reads).
inline CpuIdentity identify_cpu() {
  CpuIdentity id;
  id.vendor = "unknown";
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    const unsigned max_leaf = a;
    char vendor[13] = {};
    std::copy_n(reinterpret_cast<const char*>(&b), 4, vendor);
    std::copy_n(reinterpret_cast<const char*>(&d), 4, vendor + 4);
    std::copy_n(reinterpret_cast<const char*>(&c), 4, vendor + 8);
    id.vendor = vendor;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
      // The extended fields count only where the base family says so (Intel SDM / AMD APM).
      const int base_family = int((a >> 8) & 0xf), base_model = int((a >> 4) & 0xf);
      id.family = base_family == 0xf ? base_family + int((a >> 20) & 0xff) : base_family;
      id.model = base_family == 0xf || base_family == 0x6 ? base_model + (int((a >> 16) & 0xf) << 4) : base_model;
    }
    if (max_leaf >= 7) {
      __cpuid_count(7, 0, a, b, c, d);
      id.avx512f = (b >> 16) & 1;
      __cpuid_count(7, 1, a, b, c, d);
      id.avx512_bf16 = (a >> 5) & 1;
    }
  }
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002 + leaf, &a, &b, &c, &d);
      const unsigned regs[4] = {a, b, c, d};
      std::copy_n(reinterpret_cast<const char*>(regs), 16, brand + 16 * leaf);
    }
    id.brand = brand;
    const auto first = id.brand.find_first_not_of(' '), last = id.brand.find_last_not_of(' ');
    id.brand = first == std::string::npos ? std::string() : id.brand.substr(first, last - first + 1);
  }
#endif
#if defined(_SC_LEVEL1_DCACHE_SIZE)  // glibc's extension
  id.l1d_bytes = detail::cache_bytes(_SC_LEVEL1_DCACHE_SIZE, 0);
  id.l2_bytes = detail::cache_bytes(_SC_LEVEL2_CACHE_SIZE, 2);
  id.l3_bytes = detail::cache_bytes(_SC_LEVEL3_CACHE_SIZE, 3);
#else
  id.l1d_bytes = detail::sysfs_cache_bytes(0);
  id.l2_bytes = detail::sysfs_cache_bytes(2);
  id.l3_bytes = detail::sysfs_cache_bytes(3);
#endif
  return id;
}

}  // namespace progdiff::backend::cpu
