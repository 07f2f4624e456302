// Test-only: the upfirdn2d kernels compiled for the host against the stand-in runtime in this folder.
#include "upfirdn2d.cu"
