#include <math.h>

#include "kernels.h"

void pp_swiglu__scalar(size_t n, float *gate, const float *up) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
