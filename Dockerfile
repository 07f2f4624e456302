# GPU image for training, metrics and rendering.
#   docker build --tag signstylegan .
#   docker run --gpus=all -it --rm --user $(id -u):$(id -g) --ipc=host -v $(pwd):/scratch --workdir /scratch \
#       -e HOME=/scratch signstylegan python gen_images.py --network=... --outdir=out --seeds=0-3
# The repository is mounted at /scratch; caches live under it (see README "Docker").
FROM nvcr.io/nvidia/pytorch:24.10-py3

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TORCH_EXTENSIONS_DIR=/opt/torch_extensions \
    DNNLIB_CACHE_DIR=/scratch/.cache/dnnlib \
    TORCH_CUDA_ARCH_LIST="7.0;7.5;8.0;8.6;8.9;9.0+PTX"

WORKDIR /opt/signstylegan

# Dependencies only (our packages are used from the source tree). The base image's own torch build
# is kept: the constraint pins it so pip never swaps it for a wheel from the index.
COPY pyproject.toml README.md ./
RUN python -c "import torch; print('torch==' + torch.__version__)" > /tmp/torch-constraint.txt && \
    pip install --no-cache-dir --constraint /tmp/torch-constraint.txt ".[pose]"

# Pre-build the custom CUDA/C++ ops into TORCH_EXTENSIONS_DIR so that no run compiles them.
COPY . .
RUN python -m torch_utils.custom_ops --build && chmod -R a+rwX /opt/torch_extensions

WORKDIR /scratch
