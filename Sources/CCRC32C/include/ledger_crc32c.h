#ifndef LEDGER_CRC32C_H
#define LEDGER_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli, the polynomial of iSCSI and ext4) of `count` bytes, continuing from `crc` (0 to start).
/// Uses the CPU's CRC32 instruction when it has one (SSE 4.2 on x86-64, the CRC extension on AArch64), checked
/// once at run time, and portable tables otherwise: both give the same value.
uint32_t ledger_crc32c(uint32_t crc, const void *bytes, size_t count);

/// The same with the portable tables only, so tests can compare the two paths.
uint32_t ledger_crc32c_portable(uint32_t crc, const void *bytes, size_t count);

/// 1 when `ledger_crc32c` uses the CPU's instruction.
int ledger_crc32c_hardware(void);

#endif
