// Write-behind for large output files (OutputFile's streaming mode, used by the converter).
#if defined(__linux__)
#define _GNU_SOURCE
#endif
#include "gemma_kernels.h"
#include <fcntl.h>

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
