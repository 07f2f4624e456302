// Test-only: the filtered_lrelu kernels compiled for the host against the stand-in runtime in this folder.
#include "filtered_lrelu.cu"
