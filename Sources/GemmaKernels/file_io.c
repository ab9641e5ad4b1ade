// Write-behind for large output files (OutputFile's streaming mode, used by the converter).
#if defined(__linux__)
#define _GNU_SOURCE
#endif
#include "gemma_kernels.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

int gt_file_start_writeback(int fd, int64_t offset, int64_t length) {
#if defined(__linux__)
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)length;
    return 0;
#endif
}

int gt_file_finish_and_drop(int fd, int64_t offset, int64_t length) {
    int status = 0;
#if defined(__linux__)
    status = sync_file_range(fd, offset, length,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
#endif
#if defined(POSIX_FADV_DONTNEED)
    if (status == 0) status = posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED);
#endif
    (void)fd; (void)offset; (void)length;
    return status;
}

// One load per page, in address order: each page not yet in memory is read from storage (page
// cache first), so that later reads of [p, p + len) find it there. volatile: the loads are the
// point, their values are not.
void gt_touch_pages(const void *p, size_t len, size_t page) {
    const volatile unsigned char *bytes = (const volatile unsigned char *)p;
    for (size_t i = 0; i < len; i += page) (void)bytes[i];
    if (len > 0) (void)bytes[len - 1];
}

// mincore over [p, p + len) a few thousand pages at a time (no allocation). p is page-aligned.
int64_t gt_resident_bytes(const void *p, size_t len) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (page == 0 || ((uintptr_t)p % page) != 0) return -1;
    unsigned char vec[4096];
    const size_t span = sizeof vec * page;
    int64_t resident = 0;
    for (size_t done = 0; done < len; done += span) {
        const size_t n = len - done < span ? len - done : span;
        if (mincore((void *)((const unsigned char *)p + done), n, (void *)vec) != 0) return -1;
        const size_t pages = (n + page - 1) / page;
        for (size_t i = 0; i < pages; i++) {
            // The last page counts only its bytes inside the range.
            if (vec[i] & 1) resident += (int64_t)(i + 1 == pages ? n - i * page : page);
        }
    }
    return resident;
}
