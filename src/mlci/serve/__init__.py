"""The serving gateway behind `mlci serve` (install the `serve` extra: `pip install mlci[serve]`).

- `state`: the rollout state file shared by the gateway and the canary controller;
- `routing`: weighted, sticky choice between champion and challenger;
- `predlog`: the SQLite prediction log (inputs, outputs, variant, version, labels);
- `metrics`: Prometheus metrics;
- `app`: the Starlette application; `inputs` and `imaging` turn requests into what a model
  takes (feature rows, or its declared image tensor); `v2` and `tensors` the Open Inference
  Protocol, with its binary tensor data extension;
- `loadgen`: bounded traffic for tests, demos and benchmarks;
- `kserve`: rendering the rollout as a KServe InferenceService.

Nothing here is imported by `mlci --help`.
"""
