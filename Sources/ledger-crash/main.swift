print("ledger-crash: not built yet")
