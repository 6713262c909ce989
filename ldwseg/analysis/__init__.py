"""Research tools over the library: like-for-like comparisons, the constraint-weight sweep and the
paper's ablations, the pooling benchmark, model size and training cost, plots, learned-filter reports."""
