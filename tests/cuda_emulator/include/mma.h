// Stub for the CPU emulator: shim.h (included first with -include) emulates nvcuda::wmma.
