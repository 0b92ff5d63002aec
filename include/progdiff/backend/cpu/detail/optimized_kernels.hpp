#pragma once
// PROGDIFF_KERNELS_BEGIN / PROGDIFF_KERNELS_END around the definitions of hot CPU kernels: in a
// translation unit compiled without optimization (a debug or sanitized test at -O0), GCC still
// compiles them at -O2. An inline kernel is emitted by every unit that uses it and the linker
// keeps one copy, possibly an -O0 one, which keeps its vector accumulators in memory and runs
// tens of times slower. The same holds for the sanitized build's -O1, where GCC left the
// micro-kernel's accumulators in memory too. Other optimized builds are left as they are.
#if defined(__GNUC__) && !defined(__clang__) && (!defined(__OPTIMIZE__) || defined(__SANITIZE_ADDRESS__))
#define PROGDIFF_KERNELS_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"O2\")")
#define PROGDIFF_KERNELS_END _Pragma("GCC pop_options")
#else
#define PROGDIFF_KERNELS_BEGIN
#define PROGDIFF_KERNELS_END
#endif
