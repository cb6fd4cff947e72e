// Stub for the CPU emulator: shim.h (included first with -include) defines what the kernels use from here.
