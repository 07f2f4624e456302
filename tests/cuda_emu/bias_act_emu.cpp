// Test-only: the bias_act kernels compiled for the host against the stand-in runtime in this folder.
#include "bias_act.cu"
