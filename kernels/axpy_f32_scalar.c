#include "kernels.h"

void pp_axpy_f32__scalar(size_t n, float alpha, const float *x, float *y) {
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}
