// The commit the build is made from, `buildCommit`, is generated into this module before every build by the
// BuildCommit plugin (under .build, never in the source tree). It is a module of its own so that a new commit
// recompiles only this module and `BuildInfo.swift` and relinks the executables: LedgerCore's interface does not
// change, so nothing that imports LedgerCore is compiled again.
