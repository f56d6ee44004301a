/*
 * test_vfs.c: the encrypting VFS (src/store/vfs.c) on real SQLite files in a
 * temporary directory: no plaintext on disk (database, WAL, shm, journal,
 * copies), round trips, tamper detection (body, tag, nonce, version, page 1,
 * WAL frames, swapped and transplanted pages), keys (wrong, revoked,
 * rotated), refusal of every path that could produce a plaintext copy
 * (unbound paths, vfs=unix, temp files, mmap), crash recovery with spills
 * and a fork()-based SIGKILL loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <ftw.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store_int.h"

#define MARK "FVMARK"
#define N_ROWS 200
#define PGSZ 4096
#define MAX_BOUND 8

struct vt {
    char dir[256];
    char db[320];
    struct fv_keyring *kr;
    char bound[MAX_BOUND][320];
    size_t n_bound;
};

/* ------------------------------------------------------------ helpers */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static struct fv_keyring *keyring_new(void)
{
    struct fv_keyring *kr = NULL;
    struct fv_secret *root = NULL;
    assert_int_equal(fv_crypto_keyring_new(&kr, "test"), FV_OK);
    assert_int_equal(fv_crypto_secret_random(&root, 32), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(kr, 1, root), FV_OK);
    fv_crypto_secret_free(root);
    return kr;
}

static void keyring_add(struct fv_keyring *kr, uint32_t v)
{
    struct fv_secret *root = NULL;
    assert_int_equal(fv_crypto_secret_random(&root, 32), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(kr, v, root), FV_OK);
    fv_crypto_secret_free(root);
}

static void path_in(struct vt *t, char *out, size_t cap, const char *name)
{
    (void)snprintf(out, cap, "%s/%s", t->dir, name);
}

static void vt_bind(struct vt *t, const char *path, struct fv_keyring *kr)
{
    assert_int_equal(fv_store_vfs_bind(path, kr), FV_OK);
    for (size_t i = 0; i < t->n_bound; i++)
        if (strcmp(t->bound[i], path) == 0)
            return;
    assert_true(t->n_bound < MAX_BOUND);
    (void)snprintf(t->bound[t->n_bound++], sizeof(t->bound[0]), "%s", path);
}

static int setup(void **state)
{
    struct vt *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    assert_int_equal(fv_store_vfs_register(), FV_OK);
    const char *base = getenv("TMPDIR");
    (void)snprintf(t->dir, sizeof(t->dir), "%s/fv-vfs-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    path_in(t, t->db, sizeof(t->db), "t.db");
    t->kr = keyring_new();
    vt_bind(t, t->db, t->kr);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct vt *t = *state;
    for (size_t i = 0; i < t->n_bound; i++)
        fv_store_vfs_unbind(t->bound[i], NULL);
    fv_crypto_keyring_unref(t->kr);
    (void)nftw(t->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

static struct fv_store_conn *conn_open(const char *path)
{
    struct fv_store_conn *c = NULL;
    struct fv_error err;
    fv_error_init(&err);
    int rc = fv_store_conn_open(path, FV_STORE_CONN_CREATE, &c, &err);
    if (rc != FV_OK)
        fail_msg("open %s: %s %s", path, fv_strerror(rc), err.msg);
    return c;
}

/* Raw connection through the default (encrypting) VFS, set up or not. */
static sqlite3 *raw_open(const char *path, bool setup_vfs, int extra_flags)
{
    sqlite3 *db = NULL;
    int src =
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | extra_flags, NULL);
    if (src != SQLITE_OK)
        fail_msg("open %s: %s (%s)", path, sqlite3_errstr(src), fv_store_vfs_last_error());
    (void)sqlite3_extended_result_codes(db, 1);
    if (setup_vfs)
        assert_int_equal(fv_store_vfs_conn_setup(db), FV_OK);
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int src = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (src != SQLITE_OK)
        fail_msg("%s: %s (%s)", sql, msg ? msg : sqlite3_errstr(src), fv_store_vfs_last_error());
}

static int exec_rc(sqlite3 *db, const char *sql)
{
    (void)sqlite3_exec(db, sql, NULL, NULL, NULL);
    return sqlite3_extended_errcode(db);
}

static int64_t query_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW)
        fail_msg("%s: %s (%s)", sql, sqlite3_errmsg(db), fv_store_vfs_last_error());
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, k TEXT, big TEXT);"
    "CREATE INDEX IF NOT EXISTS t_k ON t(k);";

/* 200 rows with marker text in an indexed column and in 3 KB bodies, plus
 * one 20 KB row that overflows into a chain of pages. */
static const char fill_sql[] =
    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200) "
    "INSERT INTO t(id, k, big) SELECT i, '" MARK "k' || i, '" MARK "b' || i || "
    "hex(zeroblob(1500)) FROM s;"
    "INSERT INTO t(id, k, big) VALUES (1000, '" MARK "overflow', '" MARK
    "o' || hex(zeroblob(10000)));";

static void fill(sqlite3 *db)
{
    exec_ok(db, schema_sql);
    exec_ok(db, fill_sql);
}

/* Every row back, byte for byte. */
static void rows_ok(sqlite3 *db)
{
    assert_int_equal(query_i64(db, "SELECT count(*) FROM t"), N_ROWS + 1);
    assert_int_equal(query_i64(db, "SELECT count(*) FROM t WHERE id <= 200 AND k = '" MARK
                                   "k' || id AND big = '" MARK "b' || id || hex(zeroblob(1500))"),
                     N_ROWS);
    assert_int_equal(query_i64(db, "SELECT count(*) FROM t WHERE id = 1000 AND big = '" MARK
                                   "o' || hex(zeroblob(10000))"),
                     1);
    /* through the index */
    assert_int_equal(query_i64(db, "SELECT id FROM t WHERE k = '" MARK "k77'"), 77);
}

/* A database at path with the sample rows, checkpointed and closed. */
static void build_sample(const char *path)
{
    struct fv_store_conn *c = conn_open(path);
    fill(c->db);
    exec_ok(c->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    fv_store_conn_close(c);
}

/* Number of files in dir whose bytes contain the marker. */
static int files_with_marker(const char *dir)
{
    int hits = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[600];
        struct stat st;
        (void)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
            continue;
        FILE *fp = fopen(p, "rb");
        assert_non_null(fp);
        char *buf = malloc((size_t)st.st_size);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
        fclose(fp);
        if (memmem(buf, (size_t)st.st_size, MARK, strlen(MARK)))
            hits++;
        free(buf);
    }
    closedir(d);
    return hits;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int64_t)st.st_size;
}

static void read_at(const char *path, int64_t off, void *p, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, p, n, off), (ssize_t)n);
    close(fd);
}

static void write_at(const char *path, int64_t off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
    close(fd);
}

static void flip(const char *path, int64_t off, uint8_t x)
{
    uint8_t b;
    read_at(path, off, &b, 1);
    b ^= x;
    write_at(path, off, &b, 1);
}

static uint8_t *slurp(const char *path, size_t *ret_n)
{
    size_t n = (size_t)file_size(path);
    uint8_t *p = malloc(n);
    assert_non_null(p);
    read_at(path, 0, p, n);
    *ret_n = n;
    return p;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/*
 * Read everything from path through a fresh connection. Returns the first
 * extended error, or SQLITE_OK when every row came back right. Wrong data
 * (a query that succeeds with other values) fails the test.
 */
static int probe(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int src = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (src != SQLITE_OK) {
        /* sqlite3_open_v2 returns the primary code only */
        if (db)
            src = sqlite3_extended_errcode(db);
        sqlite3_close_v2(db);
        return src;
    }
    (void)sqlite3_extended_result_codes(db, 1);
    assert_int_equal(fv_store_vfs_conn_setup(db), FV_OK);
    const char *q = "SELECT count(*), sum(length(big)), sum(length(k)), "
                    "sum(big = '" MARK "b' || id || hex(zeroblob(1500))) FROM t";
    src = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            assert_int_equal(sqlite3_column_int64(st, 0), N_ROWS + 1);
            assert_int_equal(sqlite3_column_int64(st, 3), N_ROWS);
            src = SQLITE_OK;
        }
    }
    if (src != SQLITE_OK)
        src = sqlite3_extended_errcode(db);
    sqlite3_finalize(st);
    st = NULL;
    if (src == SQLITE_OK) {
        src = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
        if (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            const char *r = (const char *)sqlite3_column_text(st, 0);
            src = r && strcmp(r, "ok") == 0 ? SQLITE_OK : SQLITE_CORRUPT;
        } else {
            src = sqlite3_extended_errcode(db);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close_v2(db);
    return src;
}

static void assert_detected(int src)
{
    if (src != SQLITE_IOERR_DATA && src != SQLITE_IOERR_AUTH && (src & 0xff) != SQLITE_CORRUPT &&
        (src & 0xff) != SQLITE_NOTADB)
        fail_msg("tampering not detected: %d (%s) %s", src, sqlite3_errstr(src),
                 fv_store_vfs_last_error());
}

/* -------------------------------------------------------------- tests */

static void test_fv_store_vfs_register_only_encrypting_vfs(void **state)
{
    (void)state;
    sqlite3_vfs *v = sqlite3_vfs_find(NULL);
    assert_non_null(v);
    assert_string_equal(v->zName, FV_STORE_VFS_NAME);
    assert_null(v->pNext);
    assert_null(sqlite3_vfs_find("unix"));
    assert_null(sqlite3_vfs_find("unix-dotfile"));
    assert_null(sqlite3_vfs_find("unix-excl"));
    assert_null(sqlite3_vfs_find("unix-none"));
    assert_null(sqlite3_vfs_find("memdb"));
    assert_int_equal(fv_store_vfs_register(), FV_OK); /* idempotent */
}

static void test_fv_store_vfs_no_plaintext_on_disk(void **state)
{
    struct vt *t = *state;
    struct fv_store_conn *c = conn_open(t->db);
    exec_ok(c->db, "PRAGMA wal_autocheckpoint=0");
    fill(c->db);
    /* before the checkpoint: rows live in the WAL (and -shm exists) */
    char wal[400];
    (void)snprintf(wal, sizeof(wal), "%s-wal", t->db);
    assert_true(file_size(wal) > 0);
    assert_int_equal(files_with_marker(t->dir), 0);
    rows_ok(c->db);
    exec_ok(c->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_int_equal(files_with_marker(t->dir), 0);
    fv_store_conn_close(c);
    assert_int_equal(files_with_marker(t->dir), 0);

    /* The SQLite magic is not on disk either (file identity instead). */
    uint8_t h[16];
    read_at(t->db, 0, h, sizeof(h));
    assert_false(memcmp(h, "SQLite format 3", 16) == 0);

    c = conn_open(t->db);
    rows_ok(c->db);
    integrity_ok(c->db);
    fv_store_conn_close(c);
}

static void test_fv_store_vfs_tamper_db_pages(void **state)
{
    struct vt *t = *state;
    keyring_add(t->kr, 2); /* so a flipped version names an existing key */
    build_sample(t->db);
    assert_int_equal(probe(t->db), SQLITE_OK);
    size_t n;
    uint8_t *orig = slurp(t->db, &n);
    const struct {
        const char *what;
        int64_t off;
        uint8_t x;
    } cases[] = {
        {"page 2 body", PGSZ + 100, 0x01},
        {"page 3 body", 2 * PGSZ + 7, 0x80},
        {"page 2 tag", 2 * PGSZ - 32, 0x01},
        {"page 2 tag end", 2 * PGSZ - 17, 0x40},
        {"page 2 nonce", 2 * PGSZ - 16 + 5, 0x01},
        {"page 2 version -> 3 (absent)", 2 * PGSZ - 1, 0x02},
        {"page 2 version -> 2 (present)", 2 * PGSZ - 1, 0x03},
        {"page 1 byte 30", 30, 0x01},
        {"page 1 byte 18", 18, 0x01},
        {"page 1 reserve byte 20", 20, 0x10},
        {"page 1 file id", 3, 0x01},
        {"page 1 tag", PGSZ - 30, 0x01},
        {"last page body", (int64_t)n - PGSZ + 50, 0x01},
    };
    for (size_t i = 0; i < FV_ARRAY_LEN(cases); i++) {
        spit(t->db, orig, n);
        flip(t->db, cases[i].off, cases[i].x);
        int src = probe(t->db);
        if (src == SQLITE_OK)
            fail_msg("%s: tampering not detected", cases[i].what);
        assert_detected(src);
    }
    spit(t->db, orig, n);
    assert_int_equal(probe(t->db), SQLITE_OK);
    free(orig);
}

static void test_fv_store_vfs_tamper_error_text_and_mapping(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    flip(t->db, PGSZ + 100, 0x01);
    struct fv_store_conn *c = conn_open(t->db); /* page 1 is intact */
    sqlite3_stmt *st = NULL;
    const char *q = "SELECT sum(length(big)) FROM t";
    assert_int_equal(fv_store_conn_prepare(c, q, strlen(q), &st), FV_OK);
    int src = sqlite3_step(st);
    assert_int_equal(sqlite3_extended_errcode(c->db), SQLITE_IOERR_DATA);
    assert_int_equal(fv_store_sqlite_err(src), FV_E_CORRUPT);
    assert_int_equal(fv_store_sqlite_err(SQLITE_IOERR_DATA), FV_E_CORRUPT);
    assert_non_null(strstr(fv_store_vfs_last_error(), "page 2"));
    assert_non_null(strstr(fv_store_vfs_last_error(), "t.db"));
    fv_store_stmt_done(st);
    fv_store_conn_close(c);
}

static void test_fv_store_vfs_tamper_newest_wal_frame(void **state)
{
    struct vt *t = *state;
    char wal[400];
    (void)snprintf(wal, sizeof(wal), "%s-wal", t->db);
    struct fv_store_conn *a = conn_open(t->db);
    exec_ok(a->db, "PRAGMA wal_autocheckpoint=0");
    fill(a->db);
    exec_ok(a->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    exec_ok(a->db, "UPDATE t SET big = big || 'z' WHERE id = 1000");
    int64_t sz = file_size(wal);
    int64_t fsz = PGSZ + 24;
    if (sz < 32 + fsz || (sz - 32) % fsz != 0)
        fail_msg("WAL size %lld", (long long)sz);
    /* a's connection stays open: no recovery, body-only reads via the index */
    flip(wal, sz - fsz + 24 + 200, 0x01);
    int src = probe(t->db);
    assert_int_equal(src, SQLITE_IOERR_DATA);
    assert_non_null(strstr(fv_store_vfs_last_error(), "WAL"));
    flip(wal, sz - fsz + 24 + 200, 0x01);
    assert_int_equal(probe(t->db), SQLITE_OK);
    fv_store_conn_close(a);
}

static void test_fv_store_vfs_swapped_and_transplanted_pages(void **state)
{
    struct vt *t = *state;
    char other[400];
    path_in(t, other, sizeof(other), "other.db");
    vt_bind(t, other, t->kr); /* same key */
    build_sample(t->db);
    build_sample(other);
    size_t n, m;
    uint8_t *a = slurp(t->db, &n);
    uint8_t *b = slurp(other, &m);
    assert_int_equal(n, m);

    /* swap pages 2 and 3 */
    uint8_t *s = malloc(n);
    memcpy(s, a, n);
    memcpy(s + PGSZ, a + 2 * PGSZ, PGSZ);
    memcpy(s + 2 * PGSZ, a + PGSZ, PGSZ);
    spit(t->db, s, n);
    assert_detected(probe(t->db));

    /* page 2 of another database under the same key */
    memcpy(s, a, n);
    memcpy(s + PGSZ, b + PGSZ, PGSZ);
    spit(t->db, s, n);
    assert_detected(probe(t->db));

    /* page 1 of the other database (its identity, its header) */
    memcpy(s, a, n);
    memcpy(s, b, PGSZ);
    spit(t->db, s, n);
    assert_detected(probe(t->db));

    spit(t->db, a, n);
    assert_int_equal(probe(t->db), SQLITE_OK);
    free(s);
    free(a);
    free(b);
}

static void test_fv_store_vfs_wrong_key(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    struct fv_keyring *other = keyring_new();
    vt_bind(t, t->db, other);
    struct fv_store_conn *c = NULL;
    int rc = fv_store_conn_open(t->db, FV_STORE_CONN_RW, &c, NULL);
    assert_int_equal(rc, FV_E_CORRUPT);
    assert_null(c);
    assert_int_equal(probe(t->db), SQLITE_IOERR_DATA);
    assert_non_null(strstr(fv_store_vfs_last_error(), "page 1"));
    vt_bind(t, t->db, t->kr);
    assert_int_equal(probe(t->db), SQLITE_OK);
    fv_crypto_keyring_unref(other);
}

static void test_fv_store_vfs_revoked_key(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    struct fv_store_conn *c = conn_open(t->db);
    rows_ok(c->db);
    fv_crypto_keyring_revoke(t->kr);
    /* writes need the write version */
    int rc = fv_store_conn_exec(c, "INSERT INTO t(k, big) VALUES ('x', 'y')");
    assert_int_equal(rc, FV_E_KEY_UNAVAILABLE);
    fv_store_conn_close(c);
    /* new connections cannot read */
    c = NULL;
    rc = fv_store_conn_open(t->db, FV_STORE_CONN_RW, &c, NULL);
    assert_int_equal(rc, FV_E_KEY_UNAVAILABLE);
    assert_int_equal(probe(t->db), SQLITE_IOERR_AUTH);
    assert_int_equal(fv_store_sqlite_err(SQLITE_IOERR_AUTH), FV_E_KEY_UNAVAILABLE);
    assert_non_null(strstr(fv_store_vfs_last_error(), "key"));
}

static void test_fv_store_vfs_unbound_path_refused(void **state)
{
    struct vt *t = *state;
    char p[400];
    path_in(t, p, sizeof(p), "unbound.db");
    struct fv_store_conn *c = NULL;
    struct fv_error err;
    fv_error_init(&err);
    int rc = fv_store_conn_open(p, FV_STORE_CONN_CREATE, &c, &err);
    assert_int_not_equal(rc, FV_OK);
    assert_null(c);
    assert_non_null(strstr(fv_store_vfs_last_error(), "no key bound"));
    assert_non_null(strstr(err.msg, "no key bound"));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_CANTOPEN);
    sqlite3_close_v2(db);
    /* unbinding closes the door again */
    char q[400];
    path_in(t, q, sizeof(q), "later.db");
    vt_bind(t, q, t->kr);
    fv_store_vfs_unbind(q, NULL);
    assert_int_equal(sqlite3_open_v2(q, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_CANTOPEN);
    sqlite3_close_v2(db);
}

static void test_fv_store_vfs_bind_relative_and_symlinked_path(void **state)
{
    struct vt *t = *state;
    char link[400];
    path_in(t, link, sizeof(link), "link");
    assert_int_equal(symlink(t->dir, link), 0);
    char via[450];
    (void)snprintf(via, sizeof(via), "%s/s.db", link);
    char real[400];
    path_in(t, real, sizeof(real), "s.db");
    vt_bind(t, via, t->kr); /* bound through the symlink, opened by its real name */
    sqlite3 *db = raw_open(real, true, 0);
    fill(db);
    rows_ok(db);
    sqlite3_close_v2(db);
}

static void test_fv_store_vfs_temp_files_refused(void **state)
{
    struct vt *t = *state;
    sqlite3_vfs *v = sqlite3_vfs_find(NULL);
    sqlite3_file *f = calloc(1, (size_t)v->szOsFile);
    int out = 0;
    int common = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* anonymous temp files */
    assert_int_equal(
        v->xOpen(v, NULL, f, common | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_DELETEONCLOSE, &out),
        SQLITE_CANTOPEN);
    assert_null(f->pMethods);
    assert_int_equal(v->xOpen(v, NULL, f, common | SQLITE_OPEN_MAIN_DB, &out), SQLITE_CANTOPEN);
    /* named temp, transient, sub- and super-journal files */
    char p[400];
    path_in(t, p, sizeof(p), "tmpfile");
    int kinds[] = {SQLITE_OPEN_TEMP_DB, SQLITE_OPEN_TRANSIENT_DB, SQLITE_OPEN_SUBJOURNAL,
                   SQLITE_OPEN_SUPER_JOURNAL, SQLITE_OPEN_TEMP_JOURNAL};
    for (size_t i = 0; i < FV_ARRAY_LEN(kinds); i++) {
        assert_int_equal(v->xOpen(v, p, f, common | kinds[i], &out), SQLITE_CANTOPEN);
        assert_false(file_exists(p));
    }
    free(f);

    /* a connection that asks for temp files on disk gets an error, not a file */
    sqlite3 *db = raw_open(t->db, true, 0);
    exec_ok(db, "PRAGMA temp_store=FILE");
    exec_ok(db, "CREATE TEMP TABLE tt(x)");
    exec_ok(db, "PRAGMA temp.cache_size=10");
    int src = exec_rc(db, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                          "WHERE i < 2000) INSERT INTO tt SELECT '" MARK
                          "' || hex(zeroblob(1000)) FROM s");
    assert_int_equal(src & 0xff, SQLITE_CANTOPEN);
    sqlite3_close_v2(db);
    /* and the default set by fv_store_vfs_conn_setup keeps them in memory */
    db = raw_open(t->db, true, 0);
    exec_ok(db, "CREATE TEMP TABLE tt(x)");
    exec_ok(db, "PRAGMA temp.cache_size=10");
    exec_ok(db, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                "WHERE i < 2000) INSERT INTO tt SELECT '" MARK "' || hex(zeroblob(1000)) FROM s");
    assert_int_equal(query_i64(db, "SELECT count(*) FROM tt"), 2000);
    sqlite3_close_v2(db);
    assert_int_equal(files_with_marker(t->dir), 0);
}

static void test_fv_store_vfs_page1_without_reserve_refused(void **state)
{
    struct vt *t = *state;
    sqlite3 *db = raw_open(t->db, false, 0); /* no fv_store_vfs_conn_setup */
    int src = exec_rc(db, "CREATE TABLE " MARK "tbl(x)");
    assert_int_equal(src & 0xff, SQLITE_IOERR);
    assert_non_null(strstr(fv_store_vfs_last_error(), "reserved bytes"));
    sqlite3_close_v2(db);
    assert_int_equal(files_with_marker(t->dir), 0);
}

static void test_fv_store_vfs_mmap_refused(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    struct fv_store_conn *c = conn_open(t->db);
    exec_ok(c->db, "PRAGMA mmap_size=268435456");
    rows_ok(c->db);
    integrity_ok(c->db);
    fv_store_conn_close(c);
}

static void test_fv_store_vfs_vacuum_stays_encrypted(void **state)
{
    struct vt *t = *state;
    struct fv_store_conn *c = conn_open(t->db);
    exec_ok(c->db, "PRAGMA wal_autocheckpoint=0");
    fill(c->db);
    exec_ok(c->db, "DELETE FROM t WHERE id % 3 = 0");
    exec_ok(c->db, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200) "
                   "INSERT OR REPLACE INTO t(id, k, big) SELECT i, '" MARK "k' || i, '" MARK
                   "b' || i || hex(zeroblob(1500)) FROM s WHERE i % 3 = 0");
    exec_ok(c->db, "VACUUM");
    assert_int_equal(files_with_marker(t->dir), 0);
    rows_ok(c->db);
    exec_ok(c->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_int_equal(files_with_marker(t->dir), 0);
    fv_store_conn_close(c);
    assert_int_equal(probe(t->db), SQLITE_OK);
}

static void test_fv_store_vfs_vacuum_into(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    char into[400];
    path_in(t, into, sizeof(into), "into.db");
    struct fv_store_conn *c = conn_open(t->db);
    /* unbound target: refused, nothing written */
    assert_int_equal(fv_store_conn_exec(c, "VACUUM INTO '"
                                           "/nonexistent-dir-fv/x.db'"),
                     FV_E_IO);
    char sql[600];
    (void)snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", into);
    assert_int_not_equal(fv_store_conn_exec(c, sql), FV_OK);
    assert_true(!file_exists(into) || file_size(into) == 0);
    /* bound target: an encrypted, readable copy */
    vt_bind(t, into, t->kr);
    assert_int_equal(fv_store_conn_exec(c, sql), FV_OK);
    fv_store_conn_close(c);
    assert_int_equal(files_with_marker(t->dir), 0);
    assert_int_equal(probe(into), SQLITE_OK);
}

static void test_fv_store_vfs_vacuum_into_unix_vfs_refused(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    sqlite3 *db = raw_open(t->db, true, SQLITE_OPEN_URI);
    char plain[400];
    path_in(t, plain, sizeof(plain), "plain.db");
    char sql[700];
    (void)snprintf(sql, sizeof(sql), "VACUUM INTO 'file:%s?vfs=unix'", plain);
    assert_int_not_equal(exec_rc(db, sql), SQLITE_OK);
    assert_non_null(strstr(sqlite3_errmsg(db), "no such vfs"));
    (void)snprintf(sql, sizeof(sql), "ATTACH 'file:%s?vfs=unix' AS p", plain);
    assert_int_not_equal(exec_rc(db, sql), SQLITE_OK);
    (void)snprintf(sql, sizeof(sql), "VACUUM INTO 'file:%s?vfs=memdb'", plain);
    assert_int_not_equal(exec_rc(db, sql), SQLITE_OK);
    sqlite3_close_v2(db);
    assert_false(file_exists(plain));
    assert_int_equal(files_with_marker(t->dir), 0);
    /* a plain open naming the unix VFS fails too */
    assert_int_equal(
        sqlite3_open_v2(plain, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix"),
        SQLITE_ERROR);
    sqlite3_close_v2(db);
    assert_false(file_exists(plain));
}

static void test_fv_store_vfs_backup(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    char dst[400];
    path_in(t, dst, sizeof(dst), "backup.db");
    sqlite3 *src = raw_open(t->db, true, 0);
    /* unbound destination cannot even be opened */
    sqlite3 *d = NULL;
    assert_int_equal(sqlite3_open_v2(dst, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_CANTOPEN);
    sqlite3_close_v2(d);
    assert_false(file_exists(dst));
    /* bound destination: encrypted copy (page by page, pages before page 1) */
    vt_bind(t, dst, t->kr);
    d = raw_open(dst, true, 0);
    exec_ok(d, "PRAGMA cache_size=2");
    sqlite3_backup *b = sqlite3_backup_init(d, "main", src, "main");
    assert_non_null(b);
    assert_int_equal(sqlite3_backup_step(b, -1), SQLITE_DONE);
    assert_int_equal(sqlite3_backup_finish(b), SQLITE_OK);
    sqlite3_close_v2(d);
    sqlite3_close_v2(src);
    assert_int_equal(files_with_marker(t->dir), 0);
    assert_int_equal(probe(dst), SQLITE_OK);
}

static void test_fv_store_vfs_key_rotation_scan(void **state)
{
    struct vt *t = *state;
    uint32_t lo = 0, hi = 0;
    uint64_t pages = 0;
    build_sample(t->db);
    assert_int_equal(fv_store_vfs_scan(t->db, &lo, &hi, &pages), FV_OK);
    assert_int_equal(lo, 1);
    assert_int_equal(hi, 1);
    assert_int_equal(pages, (uint64_t)file_size(t->db) / PGSZ);
    assert_true(pages > 10);

    keyring_add(t->kr, 2);
    assert_int_equal(fv_crypto_keyring_set_write(t->kr, 2), FV_OK);
    struct fv_store_conn *c = conn_open(t->db);
    exec_ok(c->db, "UPDATE t SET k = k WHERE id = 5");
    exec_ok(c->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_int_equal(fv_store_vfs_scan(t->db, &lo, &hi, &pages), FV_OK);
    assert_int_equal(lo, 1); /* mixed */
    assert_int_equal(hi, 2);
    exec_ok(c->db, "VACUUM");
    exec_ok(c->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    rows_ok(c->db);
    fv_store_conn_close(c);
    assert_int_equal(fv_store_vfs_scan(t->db, &lo, &hi, &pages), FV_OK);
    assert_int_equal(lo, 2);
    assert_int_equal(hi, 2);

    fv_crypto_keyring_remove(t->kr, 1);
    assert_int_equal(probe(t->db), SQLITE_OK);
    c = conn_open(t->db);
    rows_ok(c->db);
    integrity_ok(c->db);
    fv_store_conn_close(c);
}

static void test_fv_store_vfs_scan_rejects_other_files(void **state)
{
    struct vt *t = *state;
    uint32_t lo, hi;
    uint64_t pages;
    char p[400];
    path_in(t, p, sizeof(p), "plain.db");
    uint8_t page[PGSZ] = {0};
    memcpy(page, "SQLite format 3", 16);
    page[16] = PGSZ >> 8;
    page[20] = 32;
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, page, sizeof(page)), (ssize_t)sizeof(page));
    close(fd);
    assert_int_equal(fv_store_vfs_scan(p, &lo, &hi, &pages), FV_E_CORRUPT);
    path_in(t, p, sizeof(p), "missing.db");
    assert_int_equal(fv_store_vfs_scan(p, &lo, &hi, &pages), FV_E_IO);
}

/* Run fn in a child that exits without closing anything (a crash after
 * its last commit, as far as the files are concerned). */
static void in_child(void (*fn)(const char *), const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(path);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void child_exec(sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "child: %s: %s (%s)\n", sql, sqlite3_errmsg(db), fv_store_vfs_last_error());
        _exit(3);
    }
}

static const char big_txn_sql[] =
    "BEGIN;"
    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000) "
    "INSERT INTO t(id, k, big) SELECT 10000 + i, '" MARK "k' || i, "
    "'" MARK "b' || i || hex(randomblob(400)) FROM s;"
    /* rewrite pages spilled earlier in the same transaction */
    "UPDATE t SET k = k || 'u' WHERE id % 5 = 0 AND id > 10000;"
    "COMMIT;";

static void child_big_txn(const char *path)
{
    struct fv_store_conn *c = NULL;
    if (fv_store_conn_open(path, FV_STORE_CONN_RW, &c, NULL) != FV_OK)
        _exit(2);
    child_exec(c->db, "PRAGMA cache_size=2");
    child_exec(c->db, "PRAGMA wal_autocheckpoint=0");
    child_exec(c->db, big_txn_sql);
    _exit(0); /* no close: the WAL stays, the next opener recovers it */
}

static void test_fv_store_vfs_spills_then_crash(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    in_child(child_big_txn, t->db);
    char wal[400];
    (void)snprintf(wal, sizeof(wal), "%s-wal", t->db);
    assert_true(file_size(wal) > 100 * PGSZ);
    assert_int_equal(files_with_marker(t->dir), 0);
    struct fv_store_conn *c = conn_open(t->db);
    assert_int_equal(query_i64(c->db, "SELECT count(*) FROM t WHERE id > 10000"), 3000);
    assert_int_equal(query_i64(c->db, "SELECT count(*) FROM t WHERE id > 10000 AND k LIKE '%u'"),
                     600);
    assert_int_equal(query_i64(c->db, "SELECT count(*) FROM t WHERE id > 10000 AND length(big) = "
                                      "length('" MARK "b' || (id - 10000)) + 800"),
                     3000);
    integrity_ok(c->db);
    fv_store_conn_close(c);
}

static void child_two_txns(const char *path)
{
    struct fv_store_conn *c = NULL;
    if (fv_store_conn_open(path, FV_STORE_CONN_RW, &c, NULL) != FV_OK)
        _exit(2);
    child_exec(c->db, "PRAGMA wal_autocheckpoint=0");
    child_exec(c->db, "INSERT INTO t(id, k, big) VALUES (5001, 'first', 'x')");
    child_exec(c->db, "INSERT INTO t(id, k, big) VALUES (5002, 'second', 'y')");
    _exit(0);
}

static void test_fv_store_vfs_torn_last_wal_frame_ends_log(void **state)
{
    struct vt *t = *state;
    build_sample(t->db);
    in_child(child_two_txns, t->db);
    char wal[400];
    (void)snprintf(wal, sizeof(wal), "%s-wal", t->db);
    int64_t sz = file_size(wal);
    int64_t fsz = PGSZ + 24;
    assert_int_equal((sz - 32) % fsz, 0);
    /* the commit frame of the second transaction is torn */
    flip(wal, sz - fsz + 24 + 1000, 0x01);
    struct fv_store_conn *c = conn_open(t->db);
    assert_int_equal(query_i64(c->db, "SELECT count(*) FROM t WHERE id = 5001"), 1);
    assert_int_equal(query_i64(c->db, "SELECT count(*) FROM t WHERE id = 5002"), 0);
    exec_ok(c->db, "DELETE FROM t WHERE id = 5001");
    rows_ok(c->db);
    integrity_ok(c->db);
    fv_store_conn_close(c);
}

static void child_rollback_crash(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        fv_store_vfs_conn_setup(db) != FV_OK)
        _exit(2);
    child_exec(db, "PRAGMA cache_size=10");
    child_exec(db, "BEGIN");
    child_exec(db, "UPDATE t SET big = 'changed' || hex(randomblob(1500))");
    _exit(0); /* hot journal, database pages already overwritten */
}

static void test_fv_store_vfs_rollback_journal(void **state)
{
    struct vt *t = *state;
    char jrnl[400];
    (void)snprintf(jrnl, sizeof(jrnl), "%s-journal", t->db);
    sqlite3 *db = raw_open(t->db, true, 0);
    exec_ok(db, "PRAGMA journal_mode=PERSIST");
    fill(db);
    /* in-process rollback after spills reads the journal back */
    exec_ok(db, "PRAGMA cache_size=10");
    exec_ok(db, "BEGIN");
    exec_ok(db, "UPDATE t SET big = 'changed' || hex(randomblob(1500))");
    assert_true(file_size(jrnl) > 10 * PGSZ);
    exec_ok(db, "ROLLBACK");
    rows_ok(db);
    assert_int_equal(files_with_marker(t->dir), 0);
    exec_ok(db, "PRAGMA journal_mode=DELETE");
    sqlite3_close_v2(db);

    /* crash with a hot journal: the next opener rolls it back */
    in_child(child_rollback_crash, t->db);
    assert_true(file_exists(jrnl));
    assert_int_equal(files_with_marker(t->dir), 0);
    db = raw_open(t->db, true, 0);
    rows_ok(db);
    integrity_ok(db);
    sqlite3_close_v2(db);
}

/* SIGKILL loop: a child commits numbered transactions and reports each one
 * through a pipe; every reported commit must survive, none may be partial. */
static const char kill_schema[] = "CREATE TABLE IF NOT EXISTS c(n INTEGER PRIMARY KEY, v TEXT);"
                                  "CREATE TABLE IF NOT EXISTS u(n INTEGER, j INTEGER, v TEXT);"
                                  "CREATE INDEX IF NOT EXISTS u_n ON u(n);";
#define KILL_BATCH 40

static void kill_child(const char *path, int fd)
{
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    if (fv_store_conn_open(path, FV_STORE_CONN_RW, &c, NULL) != FV_OK)
        _exit(2);
    child_exec(c->db, "PRAGMA cache_size=10");
    if (sqlite3_prepare_v2(c->db, "SELECT coalesce(max(n), 0) FROM c", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        _exit(2);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    for (;;) {
        char sql[512];
        n++;
        child_exec(c->db, "BEGIN");
        (void)snprintf(sql, sizeof(sql),
                       "INSERT INTO c(n, v) VALUES (%lld, '" MARK "' || hex(randomblob(%d)))",
                       (long long)n, 100 + (int)(n % 7) * 300);
        child_exec(c->db, sql);
        if (n % 5 == 0) {
            /* a larger transaction: spills with the tiny cache */
            (void)snprintf(sql, sizeof(sql),
                           "WITH RECURSIVE s(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM s "
                           "WHERE j < %d) INSERT INTO u(n, j, v) SELECT %lld, j, '" MARK
                           "' || hex(randomblob(500)) FROM s",
                           KILL_BATCH, (long long)n);
            child_exec(c->db, sql);
            (void)snprintf(sql, sizeof(sql), "UPDATE u SET v = v || 'x' WHERE n = %lld",
                           (long long)n);
            child_exec(c->db, sql);
        }
        child_exec(c->db, "COMMIT");
        if (n % 17 == 0)
            child_exec(c->db, "PRAGMA wal_checkpoint(PASSIVE)");
        uint32_t v = (uint32_t)n;
        if (write(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
            _exit(4);
    }
}

static void test_fv_store_vfs_sigkill_loop(void **state)
{
    struct vt *t = *state;
    struct fv_store_conn *c = conn_open(t->db);
    exec_ok(c->db, kill_schema);
    fv_store_conn_close(c);
    int64_t t0 = fv_time_mono_ns();
    int iters = 0, killed_mid = 0;
    uint32_t acked_total = 0;
    for (; iters < 40; iters++) {
        if (iters >= 20 && fv_time_mono_ns() - t0 > INT64_C(15000000000))
            break;
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            kill_child(t->db, fds[1]);
            _exit(0);
        }
        close(fds[1]);
        uint16_t r;
        fv_random_bytes(&r, sizeof(r));
        usleep(20000 + (useconds_t)(r % 150) * 1000);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status))
            fail_msg("child exited with %d before the kill", WEXITSTATUS(status));
        killed_mid++;
        uint32_t v, acked = 0;
        while (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
            acked = v;
        close(fds[0]);

        c = conn_open(t->db);
        int64_t max = query_i64(c->db, "SELECT coalesce(max(n), 0) FROM c");
        if (max < (int64_t)acked)
            fail_msg("iteration %d: acknowledged commit %u lost (max %lld)", iters, acked,
                     (long long)max);
        assert_int_equal(query_i64(c->db, "SELECT count(*) FROM c"), max);
        assert_int_equal(query_i64(c->db, "SELECT count(*) FROM (SELECT n FROM u GROUP BY n "
                                          "HAVING count(*) != 40 OR sum(v LIKE '%x') != 40)"),
                         0);
        assert_int_equal(query_i64(c->db, "SELECT count(DISTINCT n) FROM u"), max / 5);
        assert_int_equal(
            query_i64(c->db, "SELECT count(*) FROM u WHERE n NOT IN (SELECT n FROM c)"), 0);
        integrity_ok(c->db);
        fv_store_conn_close(c);
        acked_total = acked > acked_total ? acked : acked_total;
    }
    assert_true(iters >= 20);
    assert_true(acked_total > 0);
    assert_int_equal(files_with_marker(t->dir), 0);
    print_message("sigkill loop: %d kills, %u commits acknowledged, %.1f s\n", killed_mid,
                  acked_total, (double)(fv_time_mono_ns() - t0) / 1e9);
}

/* Not a pass/fail test: the cost of one page seal and open (4 KiB). */
static void test_fv_store_vfs_page_cost_report(void **state)
{
    struct vt *t = *state;
    struct fv_aead *a = NULL;
    uint8_t id[16] = {1};
    assert_int_equal(fv_crypto_keyring_aead(&a, t->kr, 1, FV_KEY_STORAGE, id, sizeof(id)), FV_OK);
    static uint8_t page[PGSZ], ct[PGSZ];
    uint8_t tag[16], nonce[12] = {0}, ad[59] = {0};
    const int n = 20000;
    int64_t s0 = fv_time_mono_ns();
    for (int i = 0; i < n; i++) {
        fv_random_bytes(nonce, sizeof(nonce));
        assert_int_equal(
            fv_crypto_aead_seal_detached(ct, tag, page, PGSZ - 32, ad, sizeof(ad), nonce, a),
            FV_OK);
    }
    int64_t s1 = fv_time_mono_ns();
    for (int i = 0; i < n; i++)
        assert_int_equal(
            fv_crypto_aead_open_detached(page, ct, PGSZ - 32, tag, ad, sizeof(ad), nonce, a),
            FV_OK);
    int64_t s2 = fv_time_mono_ns();
    fv_crypto_aead_free(a);

    /* end to end: rows through the VFS, with and without fsync */
    struct fv_store_conn *c = conn_open(t->db);
    exec_ok(c->db, "PRAGMA synchronous=OFF");
    exec_ok(c->db, schema_sql);
    int64_t e0 = fv_time_mono_ns();
    exec_ok(c->db, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < "
                   "20000) INSERT INTO t(k, big) SELECT 'k' || i, hex(randomblob(200)) FROM s");
    exec_ok(c->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    int64_t e1 = fv_time_mono_ns();
    fv_store_conn_close(c);
    print_message("page cost (4 KiB): seal %.2f us, open %.2f us; "
                  "20k rows insert+checkpoint %.1f ms\n",
                  (double)(s1 - s0) / n / 1e3, (double)(s2 - s1) / n / 1e3,
                  (double)(e1 - e0) / 1e6);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fv_store_vfs_register_only_encrypting_vfs),
        T(test_fv_store_vfs_no_plaintext_on_disk),
        T(test_fv_store_vfs_tamper_db_pages),
        T(test_fv_store_vfs_tamper_error_text_and_mapping),
        T(test_fv_store_vfs_tamper_newest_wal_frame),
        T(test_fv_store_vfs_swapped_and_transplanted_pages),
        T(test_fv_store_vfs_wrong_key),
        T(test_fv_store_vfs_revoked_key),
        T(test_fv_store_vfs_unbound_path_refused),
        T(test_fv_store_vfs_bind_relative_and_symlinked_path),
        T(test_fv_store_vfs_temp_files_refused),
        T(test_fv_store_vfs_page1_without_reserve_refused),
        T(test_fv_store_vfs_mmap_refused),
        T(test_fv_store_vfs_vacuum_stays_encrypted),
        T(test_fv_store_vfs_vacuum_into),
        T(test_fv_store_vfs_vacuum_into_unix_vfs_refused),
        T(test_fv_store_vfs_backup),
        T(test_fv_store_vfs_key_rotation_scan),
        T(test_fv_store_vfs_scan_rejects_other_files),
        T(test_fv_store_vfs_spills_then_crash),
        T(test_fv_store_vfs_torn_last_wal_frame_ends_log),
        T(test_fv_store_vfs_rollback_journal),
        T(test_fv_store_vfs_sigkill_loop),
        T(test_fv_store_vfs_page_cost_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
