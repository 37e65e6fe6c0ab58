import Foundation
import LedgerTesting
import Testing

@testable import LedgerStore

@Suite("CRC-32C")
struct CRC32CTests {
    @Test("known values: the check value of the catalogue and the iSCSI test vectors (RFC 3720, B.4)")
    func knownValues() {
        func crc(_ bytes: [UInt8]) -> UInt32 { CRC32C.checksum(bytes) }
        #expect(crc(Array("123456789".utf8)) == 0xE306_9283)
        #expect(crc([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(crc([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(crc((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(crc((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
        #expect(crc([]) == 0)
    }

    @Test("the CPU's instruction and the portable tables agree on every length and alignment")
    func pathsAgree() throws {
        #if arch(x86_64) && os(Linux)
            // Where the CPU has the instruction, the checksum must use it, or this test compares the tables with
            // themselves.
            let cpu = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
            #expect(CRC32C.usesHardware == cpu.split(whereSeparator: \.isWhitespace).contains("sse4_2"))
        #endif
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes.withUnsafeBytes { all in
            for start in 0..<9 {
                for count in [0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 385, 1000, 4096 - start] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
                    #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice), "start \(start), count \(count)")
                }
            }
        }
    }

    @Test("one flipped bit changes the checksum")
    func flippedBit() {
        var bytes = Array("an encoded event, as the log stores it".utf8)
        let before = CRC32C.checksum(bytes)
        for bit in 0..<(bytes.count * 8) {
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(CRC32C.checksum(bytes) != before)
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        }
    }
}
