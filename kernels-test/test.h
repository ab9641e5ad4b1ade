// Merged into test_support.h (kquant-c and kquant-simd each added one of these headers).
#include "test_support.h"
