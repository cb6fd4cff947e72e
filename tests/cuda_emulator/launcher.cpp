// The emulated kernels as a shared library, so that kernels/cuda.py's launch wrappers can run on the CPU: the test
// hands them a stand-in for CuPy whose RawModule launches through emu_launch (tests/test_cuda_emulated.py).
//
//   g++ -std=c++20 -O2 -fno-strict-aliasing -pthread -shared -fPIC -include shim.h -Iinclude -I../../kernels \
//       launcher.cpp -o libcudaemu.so
#include <map>
#include <string>
#include <utility>
#include "gemm_fp16.cu"
#include "dot_fp16.cu"
#include "batchnorm_fp16.cu"

namespace {
// One letter per parameter type, as the Python side encodes its arguments: p pointer, i int, q long long, f float.
template <class T> constexpr char type_code() {
    if constexpr (std::is_pointer_v<T>) return 'p';
    else if constexpr (std::is_same_v<T, int>) return 'i';
    else if constexpr (std::is_same_v<T, long long>) return 'q';
    else if constexpr (std::is_same_v<T, float>) return 'f';
    else return '?';
}
struct Entry {
    std::string signature;
    void (*call)(void**);
};
template <class... A, size_t... I> void call_with(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}
template <auto F, class... A> Entry entry(void (*)(A...)) {
    return {std::string{type_code<A>()...}, [](void** args) { call_with(F, args, std::index_sequence_for<A...>{}); }};
}
#define K(name) {#name, entry<&name>(&name)}
#define GEMMS(F) K(gemm_##F##_nn_f16), K(gemm_##F##_nt_f16), K(gemm_##F##_tn_f16), K(gemm_##F##_tt_f16), \
                 K(gemm_##F##_nn_f32), K(gemm_##F##_nt_f32), K(gemm_##F##_tn_f32), K(gemm_##F##_tt_f32)
const std::map<std::string, Entry> kernels = {
    GEMMS(wmma), GEMMS(simt), K(dot_fp16_partial), K(sum_partials_f32), K(bn_stats_nchw), K(bn_stats_nc),
    K(bn_stats_finalize), K(bn_forward_apply), K(bn_grad_sums_nchw), K(bn_grad_sums_nc), K(bn_sums_finalize),
    K(bn_backward_apply),
};
}  // namespace

// Launch kernel `name` on a (gx, gy, gz) grid of (bx, by, bz) blocks. `signature` has one type letter per argument;
// returns 0, or -1 for an unknown kernel, -2 for arguments that do not match the kernel's parameters.
extern "C" int emu_launch(const char* name, const char* signature, void** args, unsigned gx, unsigned gy, unsigned gz,
                          unsigned bx, unsigned by, unsigned bz) {
    auto it = kernels.find(name);
    if (it == kernels.end()) return -1;
    if (it->second.signature != signature) {
        fprintf(stderr, "emu_launch %s: arguments %s, parameters %s\n", name, signature, it->second.signature.c_str());
        return -2;
    }
    auto call = it->second.call;
    launch({gx, gy, gz}, {bx, by, bz}, [&] { call(args); });
    return 0;
}
