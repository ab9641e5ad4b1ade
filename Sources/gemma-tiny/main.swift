print("gemma-tiny: not yet")
