internal import CCRC32C

/// CRC-32C (Castagnoli), the checksum stored with every event.
///
/// LMDB 0.9 keeps no page checksums, so a flipped bit on disk would otherwise be read back as a fact. The event's
/// own SHA-256 catches the same damage but costs several times more per read; the CRC is checked on every read
/// and the hash by `verifyChain`. Computed in C with the CPU's CRC32 instruction where there is one (SSE 4.2,
/// AArch64's CRC extension), eight bytes an instruction, and with portable tables elsewhere.
enum CRC32C {
    static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = buffer.baseAddress else { return 0 }
        return ledger_crc32c(0, base, buffer.count)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { Self.checksum($0) }
    }

    /// The portable tables' value, for tests comparing the two paths.
    static func portableChecksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = buffer.baseAddress else { return 0 }
        return ledger_crc32c_portable(0, base, buffer.count)
    }

    /// Whether `checksum` uses the CPU's instruction.
    static var usesHardware: Bool { ledger_crc32c_hardware() != 0 }
}
