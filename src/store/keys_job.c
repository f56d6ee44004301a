/*
 * store/keys_job.c: the tenant key rotation job (DESIGN.md "Keys": "tenant
 * key rotation starts a new version for new writes and re-encrypts old data
 * in the background").
 *
 * A job is one key_jobs row per tenant; its phases:
 *   fields   re-encrypt encrypted field values, blind indexes and change-log
 *            images not under to_version, in batches of JOB_BATCH rows, each
 *            batch one tenant transaction; the cursor and counts are saved in
 *            the row after every batch, so a restart resumes where it stopped
 *            (a batch redone after a crash is harmless: values already under
 *            to_version are skipped).
 *   pages    VACUUM (every page rewritten through the encrypting VFS under the
 *            write version), checkpoint(TRUNCATE), then a scan of the file's
 *            page versions must show only to_version.
 *   destroy  re-verify both, then destroy the old wrapped root keys
 *            (secure_delete) and drop them from the keyring.
 * A lease (owner pid, expiry) makes sure the server and a CLI never run the
 * same job at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"

#define JOB_BATCH 500
#define JOB_LEASE_MS 60000

struct job {
    int64_t tenant_id;
    uint32_t from, to;
    char phase[16];
    struct fv_store_reencrypt_cursor cur;
    int64_t done, total;
};

/* Claim the first unfinished job whose lease is free. FV_E_NOT_FOUND if none. */
static int job_claim(struct fv_store *s, struct job *j, size_t *ret_pending)
{
    static const char count_sql[] = "SELECT count(*) FROM key_jobs WHERE phase != 'done'";
    static const char pick_sql[] =
        "SELECT tenant_id, from_version, to_version, phase, cursor, done, total, lease_owner, "
        "lease_until FROM key_jobs WHERE phase != 'done' ORDER BY tenant_id";
    static const char lease_sql[] =
        "UPDATE key_jobs SET lease_owner = ?2, lease_until = ?3 WHERE tenant_id = ?1";
    int64_t now = fv_time_now_ms();
    sqlite3_stmt *st = NULL;
    int rc;

    rc = fv_store_cat_begin(s);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(s->cat_writer, count_sql, sizeof(count_sql) - 1, &st);
    if (rc == FV_OK && sqlite3_step(st) == SQLITE_ROW)
        *ret_pending = (size_t)sqlite3_column_int64(st, 0);
    fv_store_stmt_done(st);
    st = NULL;
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(s->cat_writer, pick_sql, sizeof(pick_sql) - 1, &st);
    if (rc == FV_OK) {
        int src;
        bool found = false;
        while (!found && (src = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t owner = sqlite3_column_int64(st, 7);
            int64_t until = sqlite3_column_int64(st, 8);
            /* Free, ours, expired, or held by a process that is gone (a
             * SIGKILLed CLI or server): take it over. */
            bool takeable = until < now || owner == (int64_t)getpid() || owner <= 0 ||
                            (kill((pid_t)owner, 0) != 0 && errno == ESRCH);
            if (!takeable)
                continue;
            found = true;
            memset(j, 0, sizeof(*j));
            j->tenant_id = sqlite3_column_int64(st, 0);
            j->from = (uint32_t)sqlite3_column_int64(st, 1);
            j->to = (uint32_t)sqlite3_column_int64(st, 2);
            const char *ph = (const char *)sqlite3_column_text(st, 3);
            (void)fv_strlcpy(j->phase, ph ? ph : "fields", sizeof(j->phase));
            const void *b = sqlite3_column_blob(st, 4);
            if (b && sqlite3_column_bytes(st, 4) == (int)sizeof(j->cur))
                memcpy(&j->cur, b, sizeof(j->cur));
            j->done = sqlite3_column_int64(st, 5);
            j->total = sqlite3_column_int64(st, 6);
        }
        if (!found)
            rc = *ret_pending > 0 ? FV_E_BUSY : FV_E_NOT_FOUND;
    }
    fv_store_stmt_done(st);
    st = NULL;
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(s->cat_writer, lease_sql, sizeof(lease_sql) - 1, &st);
    if (rc == FV_OK) {
        (void)sqlite3_bind_int64(st, 1, j->tenant_id);
        (void)sqlite3_bind_int64(st, 2, (int64_t)getpid());
        (void)sqlite3_bind_int64(st, 3, now + JOB_LEASE_MS);
        int src = sqlite3_step(st);
        if (src != SQLITE_DONE)
            rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    return fv_store_cat_end(s, rc, false);
}

/* Save the job's progress (and error text, "" clears it); bump_epoch when a
 * phase change matters to other processes. */
static int job_save(struct fv_store *s, const struct job *j, const char *error, bool bump_epoch)
{
    static const char sql[] = "UPDATE key_jobs SET phase = ?2, cursor = ?3, done = ?4, total = "
                              "?5, updated = ?6, error = nullif(?7, ''), lease_until = "
                              "CASE WHEN ?2 = 'done' THEN 0 ELSE ?6 + ?8 END WHERE "
                              "tenant_id = ?1";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_cat_begin(s);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
    if (rc == FV_OK) {
        (void)sqlite3_bind_int64(st, 1, j->tenant_id);
        (void)sqlite3_bind_text(st, 2, j->phase, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_blob(st, 3, &j->cur, (int)sizeof(j->cur), SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(st, 4, j->done);
        (void)sqlite3_bind_int64(st, 5, j->total);
        (void)sqlite3_bind_int64(st, 6, fv_time_now_ms());
        (void)sqlite3_bind_text(st, 7, error ? error : "", -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(st, 8, JOB_LEASE_MS); /* each save renews the lease */
        int src = sqlite3_step(st);
        if (src != SQLITE_DONE)
            rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    return fv_store_cat_end(s, rc, bump_epoch);
}

/* VACUUM + checkpoint(TRUNCATE) + scan: FV_OK when every page is under `to`. */
static int pages_rewrite(struct fv_tenant *t, uint32_t to, bool vacuum, struct fv_error *reterr)
{
    int rc = FV_OK;
    fv_store_writer_enter(t);
    if (vacuum)
        rc = fv_store_conn_exec(t->writer, "VACUUM");
    int busy = 1;
    if (rc == FV_OK) {
        sqlite3_stmt *st = NULL;
        int src =
            sqlite3_prepare_v2(t->writer->db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL);
        if (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            busy = sqlite3_column_int(st, 0);
        else
            rc = fv_store_sqlite_err(src == SQLITE_OK ? sqlite3_errcode(t->writer->db) : src);
        sqlite3_finalize(st);
    }
    fv_store_writer_leave(t);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "rewriting the pages failed (%s)",
                            fv_strerror(rc));
    if (busy)
        return fv_error_set(reterr, FV_E_BUSY, SIZE_MAX,
                            "checkpoint blocked by readers; will retry");
    uint32_t lo = 0, hi = 0;
    uint64_t pages = 0;
    rc = fv_store_vfs_scan(t->db_path, &lo, &hi, &pages);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot scan the page versions (%s)",
                            fv_strerror(rc));
    if (lo != to || hi != to)
        return fv_error_set(reterr, FV_E_BUSY, SIZE_MAX,
                            "pages under key versions %u..%u remain after the rewrite; will retry",
                            lo, hi);
    return FV_OK;
}

static int destroy_old(struct fv_store *s, struct fv_tenant *t, const struct job *j)
{
    static const char sql[] = "UPDATE tenant_keys SET wrapped = NULL, state = 'destroyed', "
                              "destroyed = ?3 WHERE tenant_id = ?1 AND version < ?2 AND state = "
                              "'active'";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_cat_begin(s);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
    if (rc == FV_OK) {
        (void)sqlite3_bind_int64(st, 1, j->tenant_id);
        (void)sqlite3_bind_int64(st, 2, j->to);
        (void)sqlite3_bind_int64(st, 3, fv_time_now_ms());
        int src = sqlite3_step(st);
        if (src != SQLITE_DONE)
            rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    rc = fv_store_cat_end(s, rc, false);
    if (rc != FV_OK)
        return rc;
    uint32_t vs[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    size_t n = fv_crypto_keyring_versions(t->keys, vs, FV_ARRAY_LEN(vs));
    for (size_t i = 0; i < n; i++)
        if (vs[i] < j->to)
            fv_crypto_keyring_remove(t->keys, vs[i]);
    return FV_OK;
}

/* One step of job j. */
static int job_step(struct fv_store *s, struct job *j, struct fv_error *reterr)
{
    struct fv_tenant *t = NULL;
    int rc = fv_store_sqlite_tenant_acquire(s, j->tenant_id, &t);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot open the tenant (%s)", fv_strerror(rc));
    /* Make sure this process writes with the new version before scanning. */
    rc = fv_store_keys_tenant_load(s, t, reterr);
    if (rc == FV_OK && fv_crypto_keyring_write_version(t->keys) != j->to)
        rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                          "key version %u is not the tenant's newest key", j->to);
    if (rc != FV_OK)
        goto out;

    if (strcmp(j->phase, "fields") == 0) {
        if (j->total == 0 && j->done == 0) {
            /* From here on no process may write under an older version. */
            rc = fv_store_keys_set_floor(t, j->to);
            if (rc != FV_OK)
                goto out;
            int64_t old = 0;
            rc = fv_store_field_count_old(t, j->to, &old);
            if (rc != FV_OK)
                goto out;
            j->total = old;
        }
        size_t n = 0;
        bool finished = false;
        rc = fv_store_field_reencrypt_step(t, j->to, &j->cur, JOB_BATCH, &n, &finished);
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX, "re-encrypting fields failed (%s)",
                              fv_strerror(rc));
            goto out;
        }
        j->done += (int64_t)n;
        if (j->done > j->total)
            j->total = j->done;
        if (finished)
            (void)fv_strlcpy(j->phase, "pages", sizeof(j->phase));
        rc = job_save(s, j, "", false);
    } else if (strcmp(j->phase, "pages") == 0) {
        rc = pages_rewrite(t, j->to, true, reterr);
        if (rc == FV_OK) {
            (void)fv_strlcpy(j->phase, "destroy", sizeof(j->phase));
            rc = job_save(s, j, "", false);
        }
    } else if (strcmp(j->phase, "destroy") == 0) {
        /* Verify before anything is destroyed. The floor (re-asserted here,
         * committed under the tenant's write lock) makes every writer in
         * every process seal under j->to from now on, so what the counts and
         * the scan below see cannot regress: writes after them are new-key,
         * and a checkpoint after them only copies new-key frames. */
        int64_t old = 0;
        rc = fv_store_keys_set_floor(t, j->to);
        if (rc == FV_OK)
            rc = fv_store_field_count_old(t, j->to, &old);
        if (rc == FV_OK && old > 0) {
            memset(&j->cur, 0, sizeof(j->cur));
            (void)fv_strlcpy(j->phase, "fields", sizeof(j->phase));
            rc = job_save(s, j, "values under an old key appeared; re-encrypting again", false);
            goto out;
        }
        if (rc == FV_OK)
            rc = pages_rewrite(t, j->to, false, reterr);
        if (rc == FV_E_BUSY) {
            (void)fv_strlcpy(j->phase, "pages", sizeof(j->phase));
            rc = job_save(s, j, reterr ? reterr->msg : "", false);
            goto out;
        }
        if (rc == FV_OK)
            rc = destroy_old(s, t, j);
        if (rc == FV_OK) {
            (void)fv_strlcpy(j->phase, "done", sizeof(j->phase));
            rc = job_save(s, j, "", true);
            fv_store_keys_catalog_truncate(s);
        }
    } else {
        rc = fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX, "unknown job phase '%s'", j->phase);
    }
out:
    fv_store_sqlite_tenant_release(t);
    return rc;
}

int fv_store_keys_jobs_run(struct fv_store *s, int64_t budget_ms, size_t *ret_pending,
                           bool *ret_progress, struct fv_error *reterr)
{
    if (ret_progress)
        *ret_progress = true;
    int64_t deadline = fv_time_now_ms() + budget_ms;
    size_t pending = 0;
    int rc = FV_OK;
    if (s->read_only) {
        *ret_pending = 0;
        return FV_OK;
    }
    do {
        struct job j;
        rc = job_claim(s, &j, &pending);
        if (rc == FV_E_NOT_FOUND || rc == FV_E_BUSY) {
            /* none left, or all leased by other live processes */
            rc = FV_OK;
            if (ret_progress)
                *ret_progress = false;
            break;
        }
        if (rc != FV_OK)
            break;
        struct fv_error err;
        fv_error_init(&err);
        rc = job_step(s, &j, &err);
        if (rc != FV_OK) {
            (void)job_save(s, &j, err.msg[0] ? err.msg : fv_strerror(rc), false);
            if (reterr)
                *reterr = err;
            break;
        }
        if (strcmp(j.phase, "done") == 0 && pending > 0)
            pending--; /* job_claim counted it before this step finished it */
    } while (fv_time_now_ms() < deadline);
    *ret_pending = pending;
    return rc;
}
