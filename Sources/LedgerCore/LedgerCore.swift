// Pure logic of the ledger: money, form coding, signing, gateway messages, events and the order projection.
// No I/O, no clock, no hidden randomness: time and randomness come in as parameters.
