"""Layers the networks share: the 2x2 splits (an LDW pool, space-to-depth) and their options, blur and max
filters, padding to a multiple, the UNet's normalisation."""
