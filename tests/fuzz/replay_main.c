/*
 * Replay driver for the fuzz targets: runs LLVMFuzzerTestOneInput over every
 * regular file in the directory argv[1] (not recursive), so ctest checks the
 * corpus on every build without libFuzzer. Exits 0 when all inputs ran; a
 * target signals a bug by crashing or aborting.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_BYTES (8u * 1024u * 1024u)

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = 0;

    if (fp == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    buf = fv_malloc(REPLAY_MAX_BYTES);
    if (buf == NULL) {
        rc = 1;
        goto out;
    }
    len = fread(buf, 1, REPLAY_MAX_BYTES, fp);
    if (ferror(fp)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        rc = 1;
        goto out;
    }
    (void)LLVMFuzzerTestOneInput(buf, len);
out:
    fv_free(buf);
    fclose(fp);
    return rc;
}

int main(int argc, char **argv)
{
    DIR *d;
    struct dirent *ent;
    char path[4096];
    int failed = 0, n = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
        return 2;
    }
    d = opendir(argv[1]);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open directory %s\n", argv[1]);
        return 2;
    }
    while ((ent = readdir(d)) != NULL) {
        struct stat st;
        int k = snprintf(path, sizeof(path), "%s/%s", argv[1], ent->d_name);
        if (k < 0 || (size_t)k >= sizeof(path))
            continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        failed |= run_file(path);
        n++;
    }
    closedir(d);
    printf("replay: %d inputs from %s\n", n, argv[1]);
    return failed;
}
