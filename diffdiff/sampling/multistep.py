"""Multistep samplers (lms, ipndm, deis, uni_pc, uni_pc_bh2): filled in by the samplers work."""

MULTISTEP_SAMPLERS: dict = {}
