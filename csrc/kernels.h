/* graft: the C ABI of the CPU kernels, read by bindgen (src/kernels/sys.rs).
 *
 * Every kernel exists as a scalar reference `*_ref`, always compiled, and as ISA variants
 * `*_avx2`, `*_avx512` (x86_64) and `*_neon` (aarch64), each compiled with its own flags and
 * chosen at run time by `src/kernels`. Variants compute the same function as their `_ref` twin
 * within the tolerance the tests name for that format.
 *
 * Conventions: sizes are int64_t element counts; strides of quantized rows are in bytes (size_t),
 * strides of f32 matrices are in elements. Pointers never alias unless stated. No kernel allocates,
 * takes locks or keeps state: callers split rows among threads. */
#ifndef GRAFT_KERNELS_H
#define GRAFT_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "blocks.h"
#include "kernels_quant.h"
#include "kernels_ops.h"
#include "kernels_adapter.h"
#include "kernels_int8.h"

#endif
