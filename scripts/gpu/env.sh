# Source on the GPU machine after install_on_device.sh: the carried packages, this checkout's code,
# a model cache outside the repo, and NVLink multicast kept off (device rules).
export PYTHONPATH=/tmp/site:${HF2VLLM_SRC:-$PWD/src}
export HF2VLLM_CACHE=/root/hf2vllm-cache
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PATH=/tmp/site/bin:$PATH
