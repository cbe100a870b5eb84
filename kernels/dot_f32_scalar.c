#include "kernels.h"

float pp_dot_f32__scalar(size_t n, const float *a, const float *b) {
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}
