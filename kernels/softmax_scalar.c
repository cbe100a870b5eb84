#include <math.h>

#include "kernels.h"

void pp_softmax__scalar(size_t n, float *x) {
    float max = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];

    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }

    const float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}
