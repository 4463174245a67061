// Force-included into config_fuzz (tests/fuzz/CMakeLists.txt): toml++'s
// internal assertions compiled out, as in Debian's libtomlplusplus (g++,
// NDEBUG), which mailshard links in production.
#pragma once
#define TOML_ASSERT(expr) static_assert(true)
