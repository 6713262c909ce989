"""The UNet's down and up blocks, by kind: ``core`` (the double conv, the block protocols, max pooling,
the LDW blocks), ``controls`` (downsamplers without a learnable wavelet), ``designs`` (the equal-parameter
LDW designs and their twins) and ``bypass`` (max pooling with a detail bypass)."""
