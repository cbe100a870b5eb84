#include "kernels.h"

void pp_rope__scalar(size_t n_heads, size_t head_dim, const float *cos_sin,
                     float *x) {
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (size_t i = 0; i < head_dim; i += 2) {
            const float c = cos_sin[i];
            const float s = cos_sin[i + 1];
            const float a = v[i];
            const float b = v[i + 1];
            v[i] = a * c - b * s;
            v[i + 1] = a * s + b * c;
        }
    }
}
