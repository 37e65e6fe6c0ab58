print("ledgerd: the daemon is not built yet")
