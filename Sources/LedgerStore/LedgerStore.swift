// The storage capability of the ledger: the LMDB wrapper, the event log, projections, rebuild and verification.
// This target is the only code that imports CLMDB.
