/*
 * store/vfs.c: the encrypting SQLite VFS "formvault" (DESIGN.md "Storage",
 * notes/encrypting-vfs.md, STYLE 27). A shim over the "unix" VFS in the shape
 * of SQLite's ext/misc/cksumvfs.c: the lower file is appended to ours, every
 * method that does not touch page content passes through, and page bodies
 * are AES-256-GCM sealed with tag(16) || nonce(12) || key version(4, BE) in
 * the last FV_STORE_VFS_RESERVE bytes of each page (SQLite's reserved bytes).
 *
 * Files: the main database (every page), its WAL (frame bodies; the WAL
 * header and frame headers stay in clear) and its rollback journal (page
 * records' bodies; journal headers, page numbers and checksums stay in
 * clear). Every other kind of file (temp databases, statement and temp
 * journals, super-journals, transient databases, anonymous files) is refused:
 * connections keep them in memory (temp_store=MEMORY).
 *
 * On-disk format and associated data: src/store/README.md "Encrypting VFS".
 *
 * Threading: a file object is used by one connection at a time (SQLite's
 * contract), so its AEAD cache and scratch buffer need no lock. The binding
 * list has its own mutex. The WAL and journal objects read the file identity
 * of their main database object, which SQLite closes after them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"

#define ID_BYTES 16        /* file identity in page-1 bytes 0..15 on disk */
#define P1_CLEAR_END 24    /* page 1: bytes 16..23 stay clear (authenticated) */
#define WAL_HDR_BYTES 32   /* WAL file header */
#define WAL_FRAME_HDR 24   /* WAL frame header */
#define AD_MAX 64          /* longest associated data (59 bytes) */
#define SCAN_CHUNK 262144  /* fv_store_vfs_scan read size */
#define LAST_ERROR_MAX 512 /* fv_store_vfs_last_error() text */
#define MAX_VFS 32         /* registered VFSes unregistered at once */

/* Reserved-area layout, counted from the end of the page. */
#define RES_TAG FV_STORE_VFS_RESERVE                           /* tag at pgsz - 32 */
#define RES_NONCE (FV_STORE_VFS_RESERVE - FV_CRYPTO_TAG_BYTES) /* nonce at pgsz - 16 */
#define RES_VERSION 4                                          /* version at pgsz - 4 */

_Static_assert(FV_CRYPTO_TAG_BYTES + FV_CRYPTO_NONCE_BYTES + 4 == FV_STORE_VFS_RESERVE,
               "reserved bytes = tag + nonce + version");

static const char sqlite_magic[16] = "SQLite format 3";
static const char ad_label[10] = {'f', 'v', '-', 'p', 'a', 'g', 'e', '-', 'v', '1'};

/* File kinds; the value is the kind byte of the associated data. */
enum vfs_kind { KIND_DB = 1, KIND_WAL = 2, KIND_JOURNAL = 3 };

struct aead_slot {
    uint32_t version;
    struct fv_aead *aead;
};

struct vfs_file {
    sqlite3_file base; /* pMethods = &io_methods; must stay first */
    enum vfs_kind kind;
    const char *name;      /* SQLite's name, valid until xClose */
    struct vfs_file *main; /* the main database object (self for KIND_DB) */
    struct fv_keyring *kr; /* reference held */

    /* KIND_DB: identity and page size */
    uint8_t id[ID_BYTES];
    bool id_known; /* read from disk, or already used for a write */
    uint32_t pgsz; /* 0 = unknown */
    bool pgsz_provisional;

    /* AEAD contexts of this file, one per key version */
    uint64_t gen;
    uint8_t cache_id[ID_BYTES];
    struct aead_slot slots[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    size_t n_slots;

    /* scratch page (or frame, or journal record) */
    uint8_t *buf;
    size_t buf_cap;

    /* KIND_WAL */
    uint32_t wal_pgsz;
    int64_t hdr_off; /* offset of the last frame header written, or -1 */
    uint8_t hdr[WAL_FRAME_HDR];
    int64_t high_water; /* end of the last byte of a frame body written by this handle */

    /* KIND_JOURNAL */
    int64_t pgno_off; /* offset of the last 4-byte write, or -1 */
    uint32_t pgno_val;
};

/* The lower ("unix") file lives right after ours (cksumvfs ORIGFILE). */
#define LOWER(f) ((sqlite3_file *)((f) + 1))

static sqlite3_vfs *lower_vfs;
static sqlite3_vfs fv_vfs;
static const sqlite3_io_methods io_methods;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static int reg_rc = FV_E_INTERNAL;

static _Thread_local char last_error[LAST_ERROR_MAX];

/* ------------------------------------------------------------- helpers */

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static bool valid_pgsz(int64_t n)
{
    return n >= 512 && n <= 65536 && (n & (n - 1)) == 0;
}

/* Page size from page-1 bytes 16..17 (1 means 65536); 0 if invalid. */
static uint32_t header_pgsz(const uint8_t *p1)
{
    uint32_t v = (uint32_t)p1[16] << 8 | p1[17];
    if (v == 1)
        v = 65536;
    return valid_pgsz(v) ? v : 0;
}

static const char *file_name(const struct vfs_file *f)
{
    return f->main && f->main->name ? f->main->name : "?";
}

static const char *kind_name(enum vfs_kind k)
{
    return k == KIND_DB ? "database" : k == KIND_WAL ? "WAL" : "journal";
}

/* Record the detail of a failure for this thread and SQLite's error log. */
static void set_error(int code, const char *fmt, ...) FV_PRINTF(2, 3);
static void set_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    sqlite3_log(code, "formvault vfs: %s", last_error);
}

void fv_store_last_error_clear(void)
{
    last_error[0] = '\0';
}

const char *fv_store_last_error(void)
{
    return last_error;
}

const char *fv_store_vfs_last_error(void)
{
    return last_error;
}

/* Make the scratch buffer at least n bytes (grows only with the page size). */
static int scratch(struct vfs_file *f, size_t n)
{
    if (f->buf_cap >= n)
        return SQLITE_OK;
    uint8_t *p = fv_malloc(n);
    if (!p)
        return SQLITE_IOERR_NOMEM;
    if (f->buf) {
        fv_wipe(f->buf, f->buf_cap);
        fv_free(f->buf);
    }
    f->buf = p;
    f->buf_cap = n;
    return SQLITE_OK;
}

static void slots_clear(struct vfs_file *f)
{
    for (size_t i = 0; i < f->n_slots; i++) {
        fv_crypto_aead_free(f->slots[i].aead);
        f->slots[i].aead = NULL;
        f->slots[i].version = 0;
    }
    f->n_slots = 0;
}

/*
 * The AEAD context for key `version` and file identity id: cached per file
 * and version, rebuilt when the keyring changes (rotation, revocation) or
 * the identity does. SQLITE_IOERR_AUTH if the version is absent or revoked.
 */
static int file_aead(struct vfs_file *f, const uint8_t id[ID_BYTES], uint32_t version,
                     struct fv_aead **ret)
{
    uint64_t gen = fv_crypto_keyring_generation(f->kr);
    if (gen != f->gen || !fv_ct_equal(id, f->cache_id, ID_BYTES)) {
        slots_clear(f);
        f->gen = gen;
        memcpy(f->cache_id, id, ID_BYTES);
    }
    for (size_t i = 0; i < f->n_slots; i++) {
        if (f->slots[i].version == version) {
            *ret = f->slots[i].aead;
            return SQLITE_OK;
        }
    }
    if (f->n_slots == FV_ARRAY_LEN(f->slots))
        slots_clear(f);
    struct fv_aead *a = NULL;
    int rc = fv_crypto_keyring_aead(&a, f->kr, version, FV_KEY_STORAGE, id, ID_BYTES);
    if (rc == FV_E_KEY_UNAVAILABLE) {
        set_error(SQLITE_IOERR_AUTH, "no key version %u for '%s' (key unavailable or revoked)",
                  version, file_name(f));
        return SQLITE_IOERR_AUTH;
    }
    if (rc == FV_E_NOMEM)
        return SQLITE_IOERR_NOMEM;
    if (rc != FV_OK) {
        set_error(SQLITE_IOERR, "cannot derive the page key for '%s' (%s)", file_name(f),
                  fv_strerror(rc));
        return SQLITE_IOERR;
    }
    f->slots[f->n_slots].version = version;
    f->slots[f->n_slots].aead = a;
    f->n_slots++;
    *ret = a;
    return SQLITE_OK;
}

/*
 * Associated data: "fv-page-v1" || kind || file id || page number (BE) ||
 * key version (BE) || page-1 bytes 16..23 (database page 1 only) ||
 * WAL salt1 salt2, frame number (BE), commit size (BE) (WAL frames only).
 */
static size_t build_ad(uint8_t out[AD_MAX], enum vfs_kind kind, const uint8_t id[ID_BYTES],
                       uint32_t pgno, uint32_t version, const uint8_t *p1_clear,
                       const uint8_t *wal_salts, uint32_t frame, uint32_t commit)
{
    size_t n = 0;
    memcpy(out, ad_label, sizeof(ad_label));
    n += sizeof(ad_label);
    out[n++] = (uint8_t)kind;
    memcpy(out + n, id, ID_BYTES);
    n += ID_BYTES;
    put_be32(out + n, pgno);
    n += 4;
    put_be32(out + n, version);
    n += 4;
    if (p1_clear) {
        memcpy(out + n, p1_clear, P1_CLEAR_END - ID_BYTES);
        n += P1_CLEAR_END - ID_BYTES;
    }
    if (wal_salts) {
        memcpy(out + n, wal_salts, 8);
        n += 8;
        put_be32(out + n, frame);
        n += 4;
        put_be32(out + n, commit);
        n += 4;
    }
    return n;
}

static int lower_read(struct vfs_file *f, void *p, int n, sqlite3_int64 off)
{
    return LOWER(f)->pMethods->xRead(LOWER(f), p, n, off);
}

static int lower_write(struct vfs_file *f, const void *p, int n, sqlite3_int64 off)
{
    return LOWER(f)->pMethods->xWrite(LOWER(f), p, n, off);
}

/*
 * Learn the main database's identity and page size from page-1 bytes 0..23
 * on disk. Returns SQLITE_OK (learned or nothing there yet) or an I/O error.
 * Once known, the identity is not re-read: a changed identity on disk then
 * fails authentication instead of being adopted.
 */
static int db_learn(struct vfs_file *m)
{
    uint8_t h[P1_CLEAR_END];
    if (m->id_known && m->pgsz && !m->pgsz_provisional)
        return SQLITE_OK;
    int rc = lower_read(m, h, sizeof(h), 0);
    if (rc == SQLITE_IOERR_SHORT_READ)
        return SQLITE_OK;
    if (rc != SQLITE_OK)
        return rc;
    if (all_zero(h, ID_BYTES))
        return SQLITE_OK; /* page 1 not written yet (a hole before it) */
    if (!m->id_known) {
        memcpy(m->id, h, ID_BYTES);
        m->id_known = true;
    }
    uint32_t pgsz = header_pgsz(h);
    if (pgsz && (!m->pgsz || m->pgsz_provisional)) {
        m->pgsz = pgsz;
        m->pgsz_provisional = false;
    }
    return SQLITE_OK;
}

/* The identity for sealing: the one on disk, else this object's fresh one. */
static int id_for_write(struct vfs_file *m)
{
    int rc = db_learn(m);
    if (rc != SQLITE_OK)
        return rc;
    m->id_known = true;
    return SQLITE_OK;
}

/*
 * Seal the page at m (pgsz bytes) into out: body [start, pgsz - 32) sealed,
 * reserved area = tag || nonce || version. For database page 1 the caller
 * fills out[0..24) (id and clear header) and passes start = 24.
 */
static int page_seal(struct vfs_file *f, enum vfs_kind kind, uint8_t *out, const uint8_t *m,
                     uint32_t pgsz, uint32_t pgno, const uint8_t *wal_salts, uint32_t frame,
                     uint32_t commit)
{
    struct vfs_file *mainf = f->main;
    bool p1 = kind == KIND_DB && pgno == 1;
    size_t start = p1 ? P1_CLEAR_END : 0;
    size_t end = pgsz - FV_STORE_VFS_RESERVE;
    uint8_t ad[AD_MAX];
    struct fv_aead *a = NULL;

    uint32_t version = fv_crypto_keyring_write_version(f->kr);
    if (version == 0) {
        set_error(SQLITE_IOERR_AUTH, "cannot write page %u of the %s of '%s': key unavailable",
                  pgno, kind_name(kind), file_name(f));
        return SQLITE_IOERR_AUTH;
    }
    int rc = file_aead(f, mainf->id, version, &a);
    if (rc != SQLITE_OK)
        return rc;
    if (p1) {
        memcpy(out, mainf->id, ID_BYTES);
        memcpy(out + ID_BYTES, m + ID_BYTES, P1_CLEAR_END - ID_BYTES);
    }
    uint8_t *res = out + end;
    fv_random_bytes(res + FV_CRYPTO_TAG_BYTES, FV_CRYPTO_NONCE_BYTES);
    put_be32(res + FV_CRYPTO_TAG_BYTES + FV_CRYPTO_NONCE_BYTES, version);
    size_t adlen = build_ad(ad, kind, mainf->id, pgno, version, p1 ? out + ID_BYTES : NULL,
                            wal_salts, frame, commit);
    if (fv_crypto_aead_seal_detached(out + start, res, m + start, end - start, ad, adlen,
                                     res + FV_CRYPTO_TAG_BYTES, a) != FV_OK) {
        set_error(SQLITE_IOERR_WRITE, "cannot seal page %u of the %s of '%s'", pgno,
                  kind_name(kind), file_name(f));
        return SQLITE_IOERR_WRITE;
    }
    return SQLITE_OK;
}

/*
 * Open the raw page p (pgsz bytes) in place: plaintext body, the magic back
 * at 0..15 for database page 1, reserved bytes zeroed (WAL checksums cover
 * them). On failure p is zeroed: SQLite never sees unauthenticated bytes.
 * SQLITE_IOERR_DATA (tampered, torn or wrong key), SQLITE_IOERR_AUTH (key
 * version absent).
 */
static int page_open(struct vfs_file *f, enum vfs_kind kind, uint8_t *p, uint32_t pgsz,
                     uint32_t pgno, const uint8_t *wal_salts, uint32_t frame, uint32_t commit)
{
    struct vfs_file *mainf = f->main;
    bool p1 = kind == KIND_DB && pgno == 1;
    size_t start = p1 ? P1_CLEAR_END : 0;
    size_t end = pgsz - FV_STORE_VFS_RESERVE;
    uint8_t ad[AD_MAX];
    struct fv_aead *a = NULL;
    int rc = SQLITE_OK;
    uint8_t *res = p + end;
    uint32_t version = get_be32(p + pgsz - RES_VERSION);

    if (p1 && !mainf->id_known && !all_zero(p, ID_BYTES)) {
        memcpy(mainf->id, p, ID_BYTES);
        mainf->id_known = true;
    }
    if (version == 0) {
        rc = SQLITE_IOERR_DATA;
        goto fail;
    }
    rc = file_aead(f, mainf->id, version, &a);
    if (rc != SQLITE_OK)
        goto out;
    size_t adlen = build_ad(ad, kind, mainf->id, pgno, version, p1 ? p + ID_BYTES : NULL, wal_salts,
                            frame, commit);
    if (fv_crypto_aead_open_detached(p + start, p + start, end - start, res, ad, adlen,
                                     res + FV_CRYPTO_TAG_BYTES, a) != FV_OK) {
        rc = SQLITE_IOERR_DATA;
        goto fail;
    }
    if (p1)
        memcpy(p, sqlite_magic, sizeof(sqlite_magic));
    memset(res, 0, FV_STORE_VFS_RESERVE);
    return SQLITE_OK;
fail:
    if (p1 && fv_ct_equal(p, sqlite_magic, sizeof(sqlite_magic)))
        set_error(rc, "'%s' is a plaintext SQLite database, not an encrypted one", file_name(f));
    else if (kind == KIND_WAL)
        set_error(rc, "frame %u (page %u) of the WAL of '%s' failed authentication", frame, pgno,
                  file_name(f));
    else
        set_error(rc, "page %u of the %s of '%s' failed authentication (tampered, or wrong key)",
                  pgno, kind_name(kind), file_name(f));
out:
    memset(p, 0, pgsz);
    return rc;
}

/* ------------------------------------------------------ main database */

/* Read and open database page pgno into p (pgsz bytes). */
static int db_read_page(struct vfs_file *f, uint8_t *p, uint32_t pgno)
{
    uint32_t pgsz = f->pgsz;
    int rc = lower_read(f, p, (int)pgsz, (sqlite3_int64)(pgno - 1) * pgsz);
    if (rc == SQLITE_IOERR_SHORT_READ) {
        if (all_zero(p, pgsz))
            return rc; /* beyond the end of the file: SQLite reads zeros */
        set_error(SQLITE_IOERR_DATA, "page %u of '%s' is truncated", pgno, file_name(f));
        memset(p, 0, pgsz);
        return SQLITE_IOERR_DATA;
    }
    if (rc != SQLITE_OK)
        return rc;
    return page_open(f, KIND_DB, p, pgsz, pgno, NULL, 0, 0);
}

static int db_read(struct vfs_file *f, uint8_t *out, int amt, sqlite3_int64 off)
{
    int rc = db_learn(f);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t pgsz = f->pgsz;
    if (!pgsz) {
        /* No page 1 on disk: an empty (new) database reads as zeros; bytes
         * without a valid page-1 header are not ours (never "empty"). */
        sqlite3_int64 size = 0;
        memset(out, 0, (size_t)amt);
        rc = LOWER(f)->pMethods->xFileSize(LOWER(f), &size);
        if (rc != SQLITE_OK)
            return rc;
        if (size == 0)
            return SQLITE_IOERR_SHORT_READ;
        set_error(SQLITE_IOERR_DATA, "'%s' is not an encrypted database (no valid page-1 header)",
                  file_name(f));
        return SQLITE_IOERR_DATA;
    }
    /* Whole page: decrypt in the caller's buffer, no copy. */
    if ((uint32_t)amt == pgsz && off % pgsz == 0)
        return db_read_page(f, out, (uint32_t)(off / pgsz) + 1);

    /* A slice (page-1 header reads): open each page overlapped, copy out. */
    rc = scratch(f, pgsz);
    if (rc != SQLITE_OK)
        return rc;
    bool short_read = false;
    sqlite3_int64 pos = off, end = off + amt;
    while (pos < end) {
        uint32_t pgno = (uint32_t)(pos / pgsz) + 1;
        sqlite3_int64 skip = pos - (sqlite3_int64)(pgno - 1) * pgsz;
        sqlite3_int64 n = pgsz - skip < end - pos ? pgsz - skip : end - pos;
        rc = db_read_page(f, f->buf, pgno);
        if (rc == SQLITE_IOERR_SHORT_READ) {
            short_read = true;
            memset(out + (pos - off), 0, (size_t)n);
        } else if (rc != SQLITE_OK) {
            memset(out, 0, (size_t)amt);
            return rc;
        } else {
            memcpy(out + (pos - off), f->buf + skip, (size_t)n);
        }
        pos += n;
    }
    return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int db_write(struct vfs_file *f, const uint8_t *in, int amt, sqlite3_int64 off)
{
    int rc = db_learn(f);
    if (rc != SQLITE_OK)
        return rc;
    if (!valid_pgsz(amt) || off % amt != 0) {
        set_error(SQLITE_IOERR_WRITE, "write of %d bytes at offset %lld of '%s' is not one page",
                  amt, (long long)off, file_name(f));
        return SQLITE_IOERR_WRITE;
    }
    if (off == 0) {
        /* Page 1: never let a page without room for our reserve reach the disk. */
        if (!fv_ct_equal(in, sqlite_magic, sizeof(sqlite_magic)) ||
            header_pgsz(in) != (uint32_t)amt) {
            set_error(SQLITE_IOERR_WRITE, "page 1 of '%s' has no valid SQLite header",
                      file_name(f));
            return SQLITE_IOERR_WRITE;
        }
        if (in[20] < FV_STORE_VFS_RESERVE) {
            set_error(SQLITE_IOERR_WRITE,
                      "page 1 of '%s' has %u reserved bytes, %d needed "
                      "(fv_store_vfs_conn_setup not called?)",
                      file_name(f), in[20], FV_STORE_VFS_RESERVE);
            return SQLITE_IOERR_WRITE;
        }
        if (f->pgsz && f->pgsz != (uint32_t)amt) {
            set_error(SQLITE_IOERR_WRITE, "page size change of '%s' from %u to %d is not supported",
                      file_name(f), f->pgsz, amt);
            return SQLITE_IOERR_WRITE;
        }
        f->pgsz = (uint32_t)amt;
        f->pgsz_provisional = false;
    } else {
        /* Pages can come before page 1 (cache spills of VACUUM INTO, backup). */
        if (!f->pgsz) {
            f->pgsz = (uint32_t)amt;
            f->pgsz_provisional = true;
        }
        if (f->pgsz != (uint32_t)amt) {
            set_error(SQLITE_IOERR_WRITE, "write of %d bytes to '%s' whose page size is %u", amt,
                      file_name(f), f->pgsz);
            return SQLITE_IOERR_WRITE;
        }
    }
    rc = id_for_write(f);
    if (rc == SQLITE_OK)
        rc = scratch(f, (size_t)amt);
    if (rc == SQLITE_OK)
        rc =
            page_seal(f, KIND_DB, f->buf, in, (uint32_t)amt, (uint32_t)(off / amt) + 1, NULL, 0, 0);
    if (rc == SQLITE_OK)
        rc = lower_write(f, f->buf, amt, off);
    return rc;
}

/* ---------------------------------------------------------------- WAL */

/* Read the WAL header (salts at 16..23, page size at 8..11) from disk. */
static int wal_header(struct vfs_file *f, uint8_t h[WAL_HDR_BYTES])
{
    int rc = lower_read(f, h, WAL_HDR_BYTES, 0);
    if (rc == SQLITE_IOERR_SHORT_READ)
        return SQLITE_IOERR_DATA;
    return rc;
}

static uint32_t wal_pgsz(struct vfs_file *f)
{
    uint8_t h[WAL_HDR_BYTES];
    if (!f->wal_pgsz && wal_header(f, h) == SQLITE_OK && valid_pgsz(get_be32(h + 8)))
        f->wal_pgsz = get_be32(h + 8);
    return f->wal_pgsz;
}

/*
 * Salts for the associated data of a frame whose header is hdr. SQLite
 * writes frame headers with zero salts after a cache spill inside a write
 * transaction and fixes them at commit (walRewriteChecksums): use the WAL
 * header's salts then, on write and on read (note, pitfall 5).
 */
static int frame_salts(struct vfs_file *f, const uint8_t *hdr, uint8_t salts[8])
{
    uint8_t h[WAL_HDR_BYTES];
    if (!all_zero(hdr + 8, 8)) {
        memcpy(salts, hdr + 8, 8);
        return SQLITE_OK;
    }
    int rc = wal_header(f, h);
    if (rc != SQLITE_OK)
        return rc;
    memcpy(salts, h + 16, 8);
    return SQLITE_OK;
}

/* Frame at offset frame_off (header then body, raw in p): open the body in place. */
static int wal_open_frame(struct vfs_file *f, uint8_t *p, uint32_t pgsz, sqlite3_int64 frame_off)
{
    uint8_t salts[8];
    uint32_t frame = (uint32_t)((frame_off - WAL_HDR_BYTES) / (WAL_FRAME_HDR + pgsz)) + 1;
    int rc = frame_salts(f, p, salts);
    if (rc != SQLITE_OK)
        return rc;
    return page_open(f, KIND_WAL, p + WAL_FRAME_HDR, pgsz, get_be32(p), salts, frame,
                     get_be32(p + 4));
}

/*
 * Header + body read (recovery, walRewriteChecksums): a frame that fails
 * authentication and that this handle did not write is the torn last frame
 * of a crashed writer: present it as an invalid frame (zeros), which ends
 * the log, instead of making the database unopenable (note, pitfall 6).
 * A missing key version for a frame of the current WAL generation stays an
 * error: treating it as the end would silently drop commits.
 */
static int wal_read_frame(struct vfs_file *f, uint8_t *out, uint32_t pgsz, sqlite3_int64 off)
{
    size_t fsz = WAL_FRAME_HDR + (size_t)pgsz;
    uint8_t hdr[WAL_FRAME_HDR];
    uint8_t wh[WAL_HDR_BYTES];
    int rc = lower_read(f, out, (int)fsz, off);
    if (rc == SQLITE_IOERR_SHORT_READ) {
        memset(out, 0, fsz);
        return rc;
    }
    if (rc != SQLITE_OK)
        return rc;
    if (get_be32(out) == 0) {
        memset(out, 0, fsz); /* not a frame: SQLite stops here */
        return SQLITE_OK;
    }
    memcpy(hdr, out, sizeof(hdr));
    rc = wal_open_frame(f, out, pgsz, off);
    if (rc != SQLITE_IOERR_DATA && rc != SQLITE_IOERR_AUTH)
        return rc;
    memset(out, 0, fsz);
    if (off + (sqlite3_int64)fsz <= f->high_water)
        return rc; /* written by this handle: not torn */
    if (rc == SQLITE_IOERR_AUTH) {
        bool current = wal_header(f, wh) == SQLITE_OK && !all_zero(hdr + 8, 8) &&
                       fv_ct_equal(hdr + 8, wh + 16, 8);
        if (current)
            return rc;
    }
    sqlite3_log(SQLITE_NOTICE, "formvault vfs: %s; treating it as the end of the log",
                fv_store_vfs_last_error());
    return SQLITE_OK;
}

static int wal_read(struct vfs_file *f, uint8_t *out, int amt, sqlite3_int64 off)
{
    if (off + amt <= WAL_HDR_BYTES) {
        if (off == 0 && amt == WAL_HDR_BYTES)
            f->high_water = 0; /* recovery starts: frames on disk may be torn */
        return lower_read(f, out, amt, off);
    }
    uint32_t pgsz = wal_pgsz(f);
    if (!pgsz || off < WAL_HDR_BYTES)
        return lower_read(f, out, amt, off);
    sqlite3_int64 fsz = WAL_FRAME_HDR + (sqlite3_int64)pgsz;
    sqlite3_int64 rel = (off - WAL_HDR_BYTES) % fsz;
    sqlite3_int64 frame_off = off - rel;
    if (rel + amt <= WAL_FRAME_HDR)
        return lower_read(f, out, amt, off); /* frame header fields are clear */
    if (rel == 0 && amt == fsz)
        return wal_read_frame(f, out, pgsz, off);
    if (rel < WAL_FRAME_HDR || rel + amt > fsz) {
        set_error(SQLITE_IOERR_READ,
                  "read of %d bytes at offset %lld of the WAL of '%s' spans frames", amt,
                  (long long)off, file_name(f));
        return SQLITE_IOERR_READ;
    }
    /* Body (or a slice of it): read the frame with its header, open, copy. */
    int rc = scratch(f, (size_t)fsz);
    if (rc != SQLITE_OK)
        return rc;
    rc = lower_read(f, f->buf, (int)fsz, frame_off);
    if (rc == SQLITE_IOERR_SHORT_READ) {
        memset(out, 0, (size_t)amt);
        return rc;
    }
    if (rc == SQLITE_OK)
        rc = wal_open_frame(f, f->buf, pgsz, frame_off);
    if (rc != SQLITE_OK) {
        memset(out, 0, (size_t)amt);
        return rc;
    }
    memcpy(out, f->buf + rel, (size_t)amt);
    return SQLITE_OK;
}

static int wal_write(struct vfs_file *f, const uint8_t *in, int amt, sqlite3_int64 off)
{
    if (off + amt <= WAL_HDR_BYTES) {
        if (off == 0 && amt == WAL_HDR_BYTES) {
            /* A new WAL generation (header first, then its frames). */
            if (valid_pgsz(get_be32(in + 8)))
                f->wal_pgsz = get_be32(in + 8);
            f->high_water = 0;
            f->hdr_off = -1;
        }
        return lower_write(f, in, amt, off);
    }
    uint32_t pgsz = wal_pgsz(f);
    sqlite3_int64 fsz = WAL_FRAME_HDR + (sqlite3_int64)pgsz;
    sqlite3_int64 rel = pgsz && off >= WAL_HDR_BYTES ? (off - WAL_HDR_BYTES) % fsz : -1;
    if (rel == 0 && amt == WAL_FRAME_HDR) {
        f->hdr_off = off;
        memcpy(f->hdr, in, WAL_FRAME_HDR);
        return lower_write(f, in, amt, off);
    }
    if (rel != WAL_FRAME_HDR || amt != (int)pgsz) {
        /* Split frame writes only happen on devices without powersafe overwrite. */
        set_error(
            SQLITE_IOERR_WRITE,
            "write of %d bytes at offset %lld of the WAL of '%s' is not a frame header or body",
            amt, (long long)off, file_name(f));
        return SQLITE_IOERR_WRITE;
    }
    /* WAL checksums cover the reserved bytes, and reads hand them back as zeros. */
    if (!all_zero(in + pgsz - FV_STORE_VFS_RESERVE, FV_STORE_VFS_RESERVE)) {
        set_error(SQLITE_IOERR_WRITE, "WAL frame body for '%s' has non-zero reserved bytes",
                  file_name(f));
        return SQLITE_IOERR_WRITE;
    }
    uint8_t hdr[WAL_FRAME_HDR];
    uint8_t salts[8];
    sqlite3_int64 frame_off = off - WAL_FRAME_HDR;
    int rc = SQLITE_OK;
    if (f->hdr_off == frame_off) {
        memcpy(hdr, f->hdr, sizeof(hdr));
    } else {
        /* A body rewritten inside the transaction: its header is on disk. */
        rc = lower_read(f, hdr, sizeof(hdr), frame_off);
        if (rc == SQLITE_IOERR_SHORT_READ)
            rc = SQLITE_IOERR_WRITE;
    }
    if (rc == SQLITE_OK)
        rc = frame_salts(f, hdr, salts);
    if (rc == SQLITE_OK)
        rc = id_for_write(f->main);
    if (rc == SQLITE_OK)
        rc = scratch(f, pgsz);
    if (rc == SQLITE_OK) {
        uint32_t frame = (uint32_t)((frame_off - WAL_HDR_BYTES) / fsz) + 1;
        rc = page_seal(f, KIND_WAL, f->buf, in, pgsz, get_be32(hdr), salts, frame,
                       get_be32(hdr + 4));
    }
    if (rc == SQLITE_OK)
        rc = lower_write(f, f->buf, amt, off);
    if (rc == SQLITE_OK && off + amt > f->high_water)
        f->high_water = off + amt;
    return rc;
}

/* ------------------------------------------------------------ journal */

/*
 * Rollback journal page record: page number (4) || page || checksum (4).
 * Records start at multiples of 8 (headers are sector-sized), so a page
 * body is a page-sized access at an offset that is 4 mod 8; everything else
 * (headers, page numbers, checksums) is clear.
 */
static bool jrnl_is_body(int amt, sqlite3_int64 off)
{
    return valid_pgsz(amt) && off >= 4 && off % 8 == 4;
}

static int jrnl_read(struct vfs_file *f, uint8_t *out, int amt, sqlite3_int64 off)
{
    if (!jrnl_is_body(amt, off))
        return lower_read(f, out, amt, off);
    int rc = scratch(f, (size_t)amt + 4);
    if (rc != SQLITE_OK)
        return rc;
    rc = lower_read(f, f->buf, amt + 4, off - 4);
    if (rc == SQLITE_IOERR_SHORT_READ) {
        memset(out, 0, (size_t)amt);
        return rc;
    }
    if (rc == SQLITE_OK)
        rc = page_open(f, KIND_JOURNAL, f->buf + 4, (uint32_t)amt, get_be32(f->buf), NULL, 0, 0);
    if (rc != SQLITE_OK) {
        memset(out, 0, (size_t)amt);
        return rc;
    }
    memcpy(out, f->buf + 4, (size_t)amt);
    return SQLITE_OK;
}

static int jrnl_write(struct vfs_file *f, const uint8_t *in, int amt, sqlite3_int64 off)
{
    if (!jrnl_is_body(amt, off)) {
        if (amt == 4) {
            f->pgno_off = off;
            f->pgno_val = get_be32(in);
        }
        return lower_write(f, in, amt, off);
    }
    uint32_t pgno = f->pgno_val;
    uint8_t b[4];
    int rc = SQLITE_OK;
    if (f->pgno_off != off - 4) {
        rc = lower_read(f, b, sizeof(b), off - 4);
        if (rc == SQLITE_IOERR_SHORT_READ)
            rc = SQLITE_IOERR_WRITE;
        pgno = get_be32(b);
    }
    if (rc == SQLITE_OK)
        rc = id_for_write(f->main);
    if (rc == SQLITE_OK)
        rc = scratch(f, (size_t)amt);
    if (rc == SQLITE_OK)
        rc = page_seal(f, KIND_JOURNAL, f->buf, in, (uint32_t)amt, pgno, NULL, 0, 0);
    if (rc == SQLITE_OK)
        rc = lower_write(f, f->buf, amt, off);
    return rc;
}

/* ---------------------------------------------------------- io methods */

static int x_close(sqlite3_file *file)
{
    struct vfs_file *f = (struct vfs_file *)file;
    int rc = LOWER(f)->pMethods ? LOWER(f)->pMethods->xClose(LOWER(f)) : SQLITE_OK;
    slots_clear(f);
    if (f->buf) {
        fv_wipe(f->buf, f->buf_cap);
        FV_FREE(f->buf);
    }
    f->buf_cap = 0;
    fv_crypto_keyring_unref(f->kr);
    f->kr = NULL;
    return rc;
}

static int x_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    struct vfs_file *f = (struct vfs_file *)file;
    switch (f->kind) {
    case KIND_DB:
        return db_read(f, buf, amt, off);
    case KIND_WAL:
        return wal_read(f, buf, amt, off);
    case KIND_JOURNAL:
    default:
        return jrnl_read(f, buf, amt, off);
    }
}

static int x_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct vfs_file *f = (struct vfs_file *)file;
    switch (f->kind) {
    case KIND_DB:
        return db_write(f, buf, amt, off);
    case KIND_WAL:
        return wal_write(f, buf, amt, off);
    case KIND_JOURNAL:
    default:
        return jrnl_write(f, buf, amt, off);
    }
}

static int x_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xTruncate(LOWER(f), size);
}

static int x_sync(sqlite3_file *file, int flags)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xSync(LOWER(f), flags);
}

static int x_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xFileSize(LOWER(f), size);
}

static int x_lock(sqlite3_file *file, int lock)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xLock(LOWER(f), lock);
}

static int x_unlock(sqlite3_file *file, int lock)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xUnlock(LOWER(f), lock);
}

static int x_check_reserved_lock(sqlite3_file *file, int *out)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xCheckReservedLock(LOWER(f), out);
}

static int x_file_control(sqlite3_file *file, int op, void *arg)
{
    struct vfs_file *f = (struct vfs_file *)file;
    if (op == SQLITE_FCNTL_MMAP_SIZE) {
        /* Memory-mapped pages would bypass decryption (note, pitfall 8). */
        *(sqlite3_int64 *)arg = 0;
        return SQLITE_OK;
    }
    int rc = LOWER(f)->pMethods->xFileControl(LOWER(f), op, arg);
    if (rc == SQLITE_OK && op == SQLITE_FCNTL_VFSNAME)
        *(char **)arg = sqlite3_mprintf("%s/%z", FV_STORE_VFS_NAME, *(char **)arg);
    return rc;
}

static int x_sector_size(sqlite3_file *file)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xSectorSize(LOWER(f));
}

static int x_device_characteristics(sqlite3_file *file)
{
    struct vfs_file *f = (struct vfs_file *)file;
    /* Batch-atomic writes would skip the journal and write pages in one call. */
    return LOWER(f)->pMethods->xDeviceCharacteristics(LOWER(f)) & ~SQLITE_IOCAP_BATCH_ATOMIC;
}

static int x_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xShmMap(LOWER(f), pg, pgsz, extend, pp);
}

static int x_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xShmLock(LOWER(f), offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *file)
{
    struct vfs_file *f = (struct vfs_file *)file;
    LOWER(f)->pMethods->xShmBarrier(LOWER(f));
}

static int x_shm_unmap(sqlite3_file *file, int delete_flag)
{
    struct vfs_file *f = (struct vfs_file *)file;
    return LOWER(f)->pMethods->xShmUnmap(LOWER(f), delete_flag);
}

/* Refused: SQLite falls back to xRead, which decrypts (cksumvfs does the same). */
static int x_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **pp)
{
    (void)file;
    (void)off;
    (void)amt;
    *pp = NULL;
    return SQLITE_OK;
}

static int x_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    (void)file;
    (void)off;
    (void)p;
    return SQLITE_OK;
}

static const sqlite3_io_methods io_methods = {
    .iVersion = 3,
    .xClose = x_close,
    .xRead = x_read,
    .xWrite = x_write,
    .xTruncate = x_truncate,
    .xSync = x_sync,
    .xFileSize = x_file_size,
    .xLock = x_lock,
    .xUnlock = x_unlock,
    .xCheckReservedLock = x_check_reserved_lock,
    .xFileControl = x_file_control,
    .xSectorSize = x_sector_size,
    .xDeviceCharacteristics = x_device_characteristics,
    .xShmMap = x_shm_map,
    .xShmLock = x_shm_lock,
    .xShmBarrier = x_shm_barrier,
    .xShmUnmap = x_shm_unmap,
    .xFetch = x_fetch,
    .xUnfetch = x_unfetch,
};

/* ----------------------------------------------------------- bindings */

struct binding {
    char *path;
    char *canon;
    struct fv_keyring *kr;
    struct binding *next;
};

static pthread_mutex_t bind_mu = PTHREAD_MUTEX_INITIALIZER;
static struct binding *bindings;

/* Absolute path with symlinks resolved, as SQLite's unix xFullPathname gives:
 * realpath of the file, or of its directory plus the name if it is missing. */
static void canon_path(const char *path, char *out, size_t cap)
{
    char dir[PATH_MAX];
    char real[PATH_MAX];
    if (realpath(path, real)) {
        (void)fv_strlcpy(out, real, cap);
        return;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!slash)
        (void)fv_strlcpy(dir, ".", sizeof(dir));
    else if (slash == path)
        (void)fv_strlcpy(dir, "/", sizeof(dir));
    else
        (void)snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    int n = -1;
    if (realpath(dir, real))
        n = snprintf(out, cap, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
    if (n < 0 || (size_t)n >= cap) /* no directory, or too long: the path as given */
        (void)fv_strlcpy(out, path, cap);
}

static struct binding **binding_find(const char *path, const char *canon)
{
    struct binding **pp = &bindings;
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->path, path) == 0 || strcmp((*pp)->canon, canon) == 0)
            return pp;
    }
    return NULL;
}

int fv_store_vfs_bind(const char *path, struct fv_keyring *kr)
{
    char canon[PATH_MAX];
    struct binding *b = NULL;
    struct fv_keyring *old = NULL;
    int rc = FV_OK;

    FV_ASSERT(path && kr);
    canon_path(path, canon, sizeof(canon));
    b = fv_calloc(1, sizeof(*b));
    if (!b) {
        rc = FV_E_NOMEM;
        goto out;
    }
    b->path = fv_strdup(path);
    b->canon = fv_strdup(canon);
    if (!b->path || !b->canon) {
        rc = FV_E_NOMEM;
        goto out;
    }
    b->kr = fv_crypto_keyring_ref(kr);
    FV_ASSERT(pthread_mutex_lock(&bind_mu) == 0);
    struct binding **pp = binding_find(path, canon);
    if (pp) {
        old = (*pp)->kr;
        (*pp)->kr = b->kr;
        b->kr = NULL;
    } else {
        b->next = bindings;
        bindings = b;
        b = NULL;
    }
    FV_ASSERT(pthread_mutex_unlock(&bind_mu) == 0);
out:
    fv_crypto_keyring_unref(old);
    if (b) {
        fv_crypto_keyring_unref(b->kr);
        fv_free(b->path);
        fv_free(b->canon);
        fv_free(b);
    }
    return rc;
}

void fv_store_vfs_unbind(const char *path, struct fv_keyring *kr)
{
    char canon[PATH_MAX];
    struct binding *b = NULL;
    canon_path(path, canon, sizeof(canon));
    FV_ASSERT(pthread_mutex_lock(&bind_mu) == 0);
    struct binding **pp = binding_find(path, canon);
    if (pp && (!kr || (*pp)->kr == kr)) {
        b = *pp;
        *pp = b->next;
    }
    FV_ASSERT(pthread_mutex_unlock(&bind_mu) == 0);
    if (b) {
        fv_crypto_keyring_unref(b->kr);
        fv_free(b->path);
        fv_free(b->canon);
        fv_free(b);
    }
}

/* A new reference to the keyring bound to name, or NULL. */
static struct fv_keyring *binding_lookup(const char *name)
{
    char canon[PATH_MAX];
    struct fv_keyring *kr = NULL;
    for (int pass = 0; pass < 2 && !kr; pass++) {
        if (pass == 1)
            canon_path(name, canon, sizeof(canon));
        FV_ASSERT(pthread_mutex_lock(&bind_mu) == 0);
        struct binding **pp = binding_find(name, pass == 1 ? canon : name);
        if (pp)
            kr = fv_crypto_keyring_ref((*pp)->kr);
        FV_ASSERT(pthread_mutex_unlock(&bind_mu) == 0);
    }
    return kr;
}

/* ------------------------------------------------------------ the VFS */

static int x_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                  int *out_flags)
{
    struct vfs_file *f = (struct vfs_file *)file;
    int type = flags & 0x0FFFFF00;
    int rc = SQLITE_OK;
    (void)vfs;

    memset(f, 0, sizeof(*f));
    f->hdr_off = -1;
    f->pgno_off = -1;
    if (!name) {
        set_error(SQLITE_CANTOPEN,
                  "refusing an anonymous temporary file (flags 0x%x): "
                  "it would be written in clear (use temp_store=MEMORY)",
                  (unsigned)flags);
        return SQLITE_CANTOPEN;
    }
    if (type & SQLITE_OPEN_MAIN_DB) {
        last_error[0] = '\0';
        f->kind = KIND_DB;
        f->main = f;
        f->kr = binding_lookup(name);
        if (!f->kr) {
            set_error(SQLITE_CANTOPEN, "no key bound for database '%s'", name);
            return SQLITE_CANTOPEN;
        }
    } else if (type & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) {
        f->kind = type & SQLITE_OPEN_WAL ? KIND_WAL : KIND_JOURNAL;
        struct vfs_file *m = (struct vfs_file *)sqlite3_database_file_object(name);
        if (!m || m->base.pMethods != &io_methods || m->kind != KIND_DB || !m->kr) {
            set_error(SQLITE_CANTOPEN, "no encrypted main database for '%s'", name);
            return SQLITE_CANTOPEN;
        }
        f->main = m;
        f->kr = fv_crypto_keyring_ref(m->kr);
    } else {
        set_error(SQLITE_CANTOPEN,
                  "refusing to open '%s' (flags 0x%x): temp databases, "
                  "temp and sub-journals and super-journals stay in memory",
                  name, (unsigned)flags);
        return SQLITE_CANTOPEN;
    }
    f->name = name;
    LOWER(f)->pMethods = NULL;
    rc = lower_vfs->xOpen(lower_vfs, name, LOWER(f), flags, out_flags);
    if (rc != SQLITE_OK)
        goto fail;
    f->base.pMethods = &io_methods;
    if (f->kind == KIND_DB) {
        fv_random_bytes(f->id, ID_BYTES); /* provisional; db_learn adopts one on disk */
        rc = db_learn(f);
        if (rc != SQLITE_OK) {
            (void)x_close(file);
            f->base.pMethods = NULL;
            return rc;
        }
    }
    return SQLITE_OK;
fail:
    if (LOWER(f)->pMethods)
        (void)LOWER(f)->pMethods->xClose(LOWER(f));
    fv_crypto_keyring_unref(f->kr);
    f->kr = NULL;
    return rc;
}

static int x_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return lower_vfs->xDelete(lower_vfs, name, sync_dir);
}

static int x_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return lower_vfs->xAccess(lower_vfs, name, flags, out);
}

static int x_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return lower_vfs->xFullPathname(lower_vfs, name, n, out);
}

static void *x_dl_open(sqlite3_vfs *vfs, const char *path)
{
    (void)vfs;
    return lower_vfs->xDlOpen(lower_vfs, path);
}

static void x_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    lower_vfs->xDlError(lower_vfs, n, msg);
}

static void (*x_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return lower_vfs->xDlSym(lower_vfs, h, sym);
}

static void x_dl_close(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    lower_vfs->xDlClose(lower_vfs, h);
}

static int x_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return lower_vfs->xRandomness(lower_vfs, n, out);
}

static int x_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return lower_vfs->xSleep(lower_vfs, us);
}

static int x_current_time(sqlite3_vfs *vfs, double *t)
{
    (void)vfs;
    return lower_vfs->xCurrentTime(lower_vfs, t);
}

static int x_get_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    return lower_vfs->xGetLastError ? lower_vfs->xGetLastError(lower_vfs, n, msg) : 0;
}

static int x_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
    (void)vfs;
    return lower_vfs->xCurrentTimeInt64(lower_vfs, t);
}

static int x_set_system_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr p)
{
    (void)vfs;
    return lower_vfs->xSetSystemCall(lower_vfs, name, p);
}

static sqlite3_syscall_ptr x_get_system_call(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return lower_vfs->xGetSystemCall(lower_vfs, name);
}

static const char *x_next_system_call(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return lower_vfs->xNextSystemCall(lower_vfs, name);
}

static void do_register(void)
{
    sqlite3_vfs *others[MAX_VFS];
    size_t n = 0;

    if (sqlite3_initialize() != SQLITE_OK)
        return;
    lower_vfs = sqlite3_vfs_find("unix");
    if (!lower_vfs || lower_vfs->iVersion < 3)
        return;
    fv_vfs = (sqlite3_vfs){
        .iVersion = 3,
        .szOsFile = (int)sizeof(struct vfs_file) + lower_vfs->szOsFile,
        .mxPathname = lower_vfs->mxPathname,
        .zName = FV_STORE_VFS_NAME,
        .pAppData = lower_vfs,
        .xOpen = x_open,
        .xDelete = x_delete,
        .xAccess = x_access,
        .xFullPathname = x_full_pathname,
        .xDlOpen = x_dl_open,
        .xDlError = x_dl_error,
        .xDlSym = x_dl_sym,
        .xDlClose = x_dl_close,
        .xRandomness = x_randomness,
        .xSleep = x_sleep,
        .xCurrentTime = x_current_time,
        .xGetLastError = x_get_last_error,
        .xCurrentTimeInt64 = x_current_time_int64,
        .xSetSystemCall = x_set_system_call,
        .xGetSystemCall = x_get_system_call,
        .xNextSystemCall = x_next_system_call,
    };
    if (sqlite3_vfs_register(&fv_vfs, 1) != SQLITE_OK)
        return;
    /* No plaintext VFS may stay nameable: unix, unix-dotfile, unix-excl,
     * unix-none, memdb... (URI vfs=, VACUUM INTO, ATTACH). */
    for (sqlite3_vfs *v = sqlite3_vfs_find(NULL); v && n < MAX_VFS; v = v->pNext) {
        if (v != &fv_vfs)
            others[n++] = v;
    }
    for (size_t i = 0; i < n; i++)
        (void)sqlite3_vfs_unregister(others[i]);
    for (sqlite3_vfs *v = sqlite3_vfs_find(NULL); v; v = v->pNext) {
        if (v != &fv_vfs)
            return; /* more than MAX_VFS: refuse to run with a plaintext VFS left */
    }
    reg_rc = FV_OK;
}

#ifdef FV_BENCH_PLAIN_VFS
/* Benchmark-only build (CMake FV_BENCH_PLAIN_VFS, bench/encryption.sh): the
 * unix VFS stays the default and nothing is encrypted. Never ship it. */
static void bench_plain_register(void)
{
    (void)do_register;
    (void)fprintf(stderr, "formvault: BENCHMARK BUILD: storage is NOT encrypted\n");
    reg_rc = sqlite3_initialize() == SQLITE_OK ? FV_OK : FV_E_INTERNAL;
}
#endif

int fv_store_vfs_register(void)
{
#ifdef FV_BENCH_PLAIN_VFS
    FV_ASSERT(pthread_once(&reg_once, bench_plain_register) == 0);
#else
    FV_ASSERT(pthread_once(&reg_once, do_register) == 0);
#endif
    return reg_rc;
}

int fv_store_vfs_conn_setup(sqlite3 *db)
{
    sqlite3_vfs *v = NULL;
    int n = FV_STORE_VFS_RESERVE;
#ifdef FV_BENCH_PLAIN_VFS /* benchmark build: the unix VFS, no reserve */
    (void)v;
    (void)n;
#else
    /* 1. the main database goes through this VFS; 2. new databases reserve
     * room for tag, nonce and version (it only takes while the file is
     * empty, and turning on WAL already writes page 1: note, pitfall 1). */
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &v) != SQLITE_OK || v != &fv_vfs)
        return FV_E_IO;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n) != SQLITE_OK)
        return FV_E_IO;
#endif
    /* mmap would bypass xRead; temp files are refused on disk. */
    if (sqlite3_exec(db, "PRAGMA mmap_size=0; PRAGMA temp_store=MEMORY", NULL, NULL, NULL) !=
        SQLITE_OK)
        return FV_E_IO;
    return FV_OK;
}

/* ------------------------------------------------------------------ scan */

int fv_store_vfs_scan(const char *path, uint32_t *ret_min, uint32_t *ret_max, uint64_t *ret_pages)
{
    int rc = FV_OK;
    int fd = -1;
    uint8_t *buf = NULL;
    uint8_t h[P1_CLEAR_END];
    struct stat st;
    uint32_t vmin = UINT32_MAX, vmax = 0;
    uint64_t pages = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = FV_E_IO;
        goto out;
    }
    if (st.st_size == 0) {
        vmin = 0;
        goto done;
    }
    if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    uint32_t pgsz = header_pgsz(h);
    if (!pgsz || h[20] < FV_STORE_VFS_RESERVE || fv_ct_equal(h, sqlite_magic, 16) ||
        st.st_size % pgsz != 0) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    buf = fv_malloc(SCAN_CHUNK);
    if (!buf) {
        rc = FV_E_NOMEM;
        goto out;
    }
    pages = (uint64_t)st.st_size / pgsz;
    /* SQLite never writes the page holding the lock bytes at 1 GiB. */
    uint64_t lock_page = 0x40000000 / pgsz + 1;
    size_t per = SCAN_CHUNK / pgsz;
    for (uint64_t p = 0; p < pages; p += per) {
        size_t n = pages - p < per ? (size_t)(pages - p) : per;
        ssize_t got = pread(fd, buf, n * pgsz, (off_t)(p * pgsz));
        if (got != (ssize_t)(n * pgsz)) {
            rc = FV_E_IO;
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (p + i + 1 == lock_page)
                continue;
            uint32_t v = get_be32(buf + (i + 1) * pgsz - RES_VERSION);
            vmin = v < vmin ? v : vmin;
            vmax = v > vmax ? v : vmax;
        }
    }
    if (vmin == UINT32_MAX)
        vmin = 0;
done:
    *ret_min = vmin;
    *ret_max = vmax;
    *ret_pages = pages;
out:
    fv_free(buf);
    if (fd >= 0)
        (void)close(fd);
    return rc;
}
