/*
 * core/file.c: reading small private files (PINs and similar secrets that
 * live next to the configuration).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

int fv_file_read_private_line(const char *path, char *out, size_t cap, struct fv_error *reterr)
{
    struct stat sb;
    FV_ASSERT(path && out && cap >= 2);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX, "cannot read '%s': %s", path,
                            strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0) {
        (void)close(fd);
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "'%s' must be a regular file readable only by its owner (chmod 0400)",
                            path);
    }
    ssize_t n;
    do
        n = read(fd, out, cap - 1);
    while (n < 0 && errno == EINTR);
    (void)close(fd);
    if (n <= 0) {
        fv_wipe(out, cap);
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "'%s' is empty or unreadable", path);
    }
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return FV_OK;
}
