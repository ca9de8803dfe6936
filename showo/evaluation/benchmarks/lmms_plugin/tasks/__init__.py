"""No tasks of showo's own: lmms-eval's (pope, mme, vqav2_val, gqa, mmmu_val, ...) are used as they are."""
