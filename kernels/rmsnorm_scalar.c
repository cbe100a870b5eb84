#include <math.h>

#include "kernels.h"

void pp_rmsnorm__scalar(size_t n, const float *x, const float *w, float eps,
                        float *out) {
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];

    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = w[i] * (inv * x[i]);
}
