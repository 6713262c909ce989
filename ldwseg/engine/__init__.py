"""The task-agnostic training engine: fit, one epoch, the task protocol, run checkpoints and resume,
sampling, distributed training (synced BatchNorm, restarts), interrupts, the run lock and logs."""
