// CRC-32C, the checksum stored with every event. See include/ledger_crc32c.h.
//
// The hardware path: x86-64's SSE 4.2 `crc32` instruction and AArch64's `crc32c*` instructions compute exactly
// this polynomial (reflected 0x82F63B78), eight bytes per instruction. The portable path: slicing-by-8 tables.

#include "ledger_crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#elif defined(__aarch64__) && defined(__linux__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

static uint32_t tables[8][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    for (uint32_t index = 0; index < 256; index++) {
        uint32_t crc = index;
        for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        tables[0][index] = crc;
    }
    for (uint32_t index = 0; index < 256; index++) {
        for (int table = 1; table < 8; table++) {
            uint32_t previous = tables[table - 1][index];
            tables[table][index] = (previous >> 8) ^ tables[0][previous & 0xFF];
        }
    }
}

uint32_t ledger_crc32c_portable(uint32_t crc, const void *bytes, size_t count) {
    // Built once, by the first caller; pthread_once makes the other callers wait and see the finished tables.
    pthread_once(&tables_once, build_tables);
    const uint8_t *p = bytes;
    crc = ~crc;
    while (count >= 8) {
        uint32_t low = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = tables[7][low & 0xFF] ^ tables[6][(low >> 8) & 0xFF] ^ tables[5][(low >> 16) & 0xFF]
            ^ tables[4][low >> 24] ^ tables[3][p[4]] ^ tables[2][p[5]] ^ tables[1][p[6]] ^ tables[0][p[7]];
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        crc = (crc >> 8) ^ tables[0][(crc ^ *p) & 0xFF];
        p++;
        count--;
    }
    return ~crc;
}

#if defined(__x86_64__)

__attribute__((target("sse4.2"))) static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t count) {
    const uint8_t *p = bytes;
    uint64_t wide = ~crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);  // unaligned load; the instruction reads little-endian, as the tables do
        wide = _mm_crc32_u64(wide, word);
        p += 8;
        count -= 8;
    }
    uint32_t narrow = (uint32_t)wide;
    while (count > 0) {
        narrow = _mm_crc32_u8(narrow, *p);
        p++;
        count--;
    }
    return ~narrow;
}

static int detect(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

#elif defined(__aarch64__) && defined(__linux__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__

__attribute__((target("crc"))) static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t count) {
    const uint8_t *p = bytes;
    crc = ~crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        crc = __crc32cd(crc, word);
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        crc = __crc32cb(crc, *p);
        p++;
        count--;
    }
    return ~crc;
}

static int detect(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }

#else

static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t count) {
    return ledger_crc32c_portable(crc, bytes, count);
}

static int detect(void) { return 0; }

#endif

// -1 until the first call asks the CPU.
static int hardware = -1;

int ledger_crc32c_hardware(void) {
    int known = __atomic_load_n(&hardware, __ATOMIC_RELAXED);
    if (known < 0) {
        known = detect();
        __atomic_store_n(&hardware, known, __ATOMIC_RELAXED);
    }
    return known;
}

uint32_t ledger_crc32c(uint32_t crc, const void *bytes, size_t count) {
    return ledger_crc32c_hardware() ? crc32c_hardware(crc, bytes, count) : ledger_crc32c_portable(crc, bytes, count);
}
