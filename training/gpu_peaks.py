"""Peak dense 16-bit tensor FLOP/s by the name a GPU reports (torch.cuda.get_device_name): the one table behind
training/bench.py's MFU on the GPU it runs on and ops/bench_estimate.py's estimate for an instance type's GPUs
(DESIGN.md section 5). It imports nothing, so bench.py loads it on a GPU machine without the CDK app's packages, and
the CDK app's ops/ loads it as training.gpu_peaks without torch's."""

# Most specific first (an "H100 PCIe" is an "H100" too): bf16 and fp16 alike on these GPUs; fp16 alone on the V100
# (no bf16), which the default training instance, ml.p3dn.24xlarge, has eight of.
PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("A10G", 70.0),
    ("V100", 125.0),
]


def peak_tflops(gpu_name: str) -> float | None:
    """The peak of the GPU called gpu_name, or None for a GPU not in the table."""
    return next((tflops for key, tflops in PEAK_TFLOPS if key in gpu_name), None)
