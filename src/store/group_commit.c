/*
 * store/group_commit.c: the per-tenant write queue (DESIGN.md "Write path").
 *
 * A caller prepares its writes (parsing, validation) in its own thread, then
 * queues them as one job. A caller that finds no leader becomes the leader:
 * it takes queued jobs up to group_commit_max writes, runs them in one
 * transaction (each write in its own SAVEPOINT), commits once and wakes the
 * waiters, each with its own per-write results. If the transaction cannot
 * commit, every write of the batch gets the error and nothing is
 * acknowledged.
 */
#include <string.h>

#include "store/store_int.h"

static void job_fail(struct fv_store_job *j, int rc)
{
    j->rc = rc;
    for (size_t i = 0; i < j->n; i++) {
        struct fv_store_write *w = j->preps[i].w;
        FV_FREE(w->results);
        w->n_results = 0;
        w->more_records = false;
        w->ret_id = 0;
        w->rc = rc;
        fv_error_init(&w->err);
        (void)fv_error_set(&w->err, rc, SIZE_MAX, "the write could not be committed");
    }
}

static int save_next_id(struct fv_tenant *t)
{
    static const char sql[] = "UPDATE fv_meta SET value = ?1 WHERE key = 'next_id'";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(t->writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, t->next_id);
    int src = sqlite3_step(st);
    fv_store_stmt_done(st);
    if (src != SQLITE_DONE)
        return fv_store_sqlite_err(src);
    return sqlite3_changes(t->writer->db) == 1 ? FV_OK : FV_E_CORRUPT;
}

/* Run jobs batch..(NULL) in one transaction. Leader only. */
static void run_batch(struct fv_tenant *t, struct fv_store_job *batch)
{
    int rc;
    int64_t now = fv_time_now_ms();
    int64_t first_id;

    rc = fv_store_conn_exec(t->writer, "BEGIN IMMEDIATE");
    /* Another process may have written since the last batch: re-read under the
     * lock, but never move backwards (a rolled-back batch's IDs stay skipped). */
    if (rc == FV_OK) {
        int64_t mem = t->next_id;
        rc = fv_store_tenant_load_next_id(t);
        if (rc == FV_OK && t->next_id < mem)
            t->next_id = mem;
    }
    if (rc == FV_OK)
        rc = fv_store_keys_writer_check(t);
    first_id = t->next_id;
    for (struct fv_store_job *j = batch; rc == FV_OK && j; j = j->next) {
        for (size_t i = 0; rc == FV_OK && i < j->n; i++)
            rc = fv_store_prep_exec(t, j->app, &j->preps[i], j->actor, now);
    }
    if (rc == FV_OK && t->next_id != first_id)
        rc = save_next_id(t);
    if (rc == FV_OK)
        rc = fv_store_conn_exec(t->writer, "COMMIT");
    if (rc != FV_OK) {
        if (!sqlite3_get_autocommit(t->writer->db))
            fv_store_conn_rollback(t->writer);
        fv_log(FV_LOG_DEBUG, "store: tenant %lld: batch not committed: %s", (long long)t->id,
               fv_strerror(rc));
        /* IDs taken by the failed batch are skipped, never reused. */
        for (struct fv_store_job *j = batch; j; j = j->next)
            job_fail(j, rc);
        return;
    }
    for (struct fv_store_job *j = batch; j; j = j->next)
        j->rc = FV_OK;
}

/*
 * Each waiter sleeps on its own condition variable, so finishing a batch wakes
 * exactly the writers of that batch plus the next leader, not every waiter
 * (a broadcast to 60+ threads cost a third of the write path's CPU).
 */
static void queue_run(struct fv_tenant *t, struct fv_store_job *job)
{
    (void)pthread_mutex_lock(&t->wq_mu);
    if (t->q_tail)
        t->q_tail->next = job;
    else
        t->q_head = job;
    t->q_tail = job;
    while (!job->done) {
        if (t->leader) {
            (void)pthread_cond_wait(&job->cv, &t->wq_mu);
            continue;
        }
        t->leader = true;
        /* Take whole jobs up to group_commit_max writes (at least one job). */
        struct fv_store_job *batch = t->q_head, *last = t->q_head;
        size_t total = last->n;
        while (last->next && total + last->next->n <= (size_t)t->group_commit_max) {
            last = last->next;
            total += last->n;
        }
        t->q_head = last->next;
        if (!t->q_head)
            t->q_tail = NULL;
        last->next = NULL;
        (void)pthread_mutex_unlock(&t->wq_mu);

        run_batch(t, batch);

        (void)pthread_mutex_lock(&t->wq_mu);
        for (struct fv_store_job *j = batch; j;) {
            struct fv_store_job *next = j->next;
            j->next = NULL;
            j->done = true;
            if (j != job)
                (void)pthread_cond_signal(&j->cv);
            j = next;
        }
        t->leader = false;
        /* Hand leadership to the oldest waiter, if any; wake app installers
         * (fv_store_writer_enter), who wait on the tenant's own condition. */
        if (t->q_head)
            (void)pthread_cond_signal(&t->q_head->cv);
        (void)pthread_cond_broadcast(&t->wq_cv);
    }
    (void)pthread_mutex_unlock(&t->wq_mu);
}

int fv_store_sqlite_write(struct fv_tenant *t, const struct fv_app *app, struct fv_store_write *w,
                          size_t n, const char *actor)
{
    int rc = FV_OK;
    struct fv_store_prep *preps = NULL;
    struct fv_store_job job;
    bool any = false;

    for (size_t i = 0; i < n; i++) {
        w[i].rc = FV_OK;
        fv_error_init(&w[i].err);
        w[i].ret_id = 0;
        w[i].results = NULL;
        w[i].n_results = 0;
        w[i].more_records = false;
    }
    if (n == 0)
        return FV_OK;
    if (t->store->read_only) {
        rc = FV_E_READ_ONLY;
        goto fail_all;
    }
    preps = fv_calloc(n, sizeof(*preps));
    if (!preps) {
        rc = FV_E_NOMEM;
        goto fail_all;
    }
    /* Caller's thread: parse and validate every write before queuing. */
    for (size_t i = 0; i < n; i++) {
        const struct fv_app *owner = NULL;
        const struct fv_store_form *sf = fv_store_form_find(t, w[i].form, &owner);
        preps[i].w = &w[i];
        if (!sf || owner != app) {
            w[i].rc = fv_error_set(&w[i].err, FV_E_NO_FORM, SIZE_MAX, "no such form");
            continue;
        }
        int prc = fv_store_prep_init(&preps[i], app, sf, &w[i]);
        if (prc == FV_E_NOMEM && w[i].rc == FV_OK)
            w[i].rc = prc;
        if (preps[i].ready)
            any = true;
    }
    if (any) {
        memset(&job, 0, sizeof(job));
        if (pthread_cond_init(&job.cv, NULL) != 0) {
            rc = FV_E_NOMEM;
            for (size_t i = 0; i < n; i++)
                fv_store_prep_release(&preps[i]);
            fv_free(preps);
            goto fail_all;
        }
        job.preps = preps;
        job.n = n;
        job.app = app;
        job.actor = actor ? actor : "";
        queue_run(t, &job);
        rc = job.rc;
        (void)pthread_cond_destroy(&job.cv);
    }
    for (size_t i = 0; i < n; i++)
        fv_store_prep_release(&preps[i]);
    fv_free(preps);
    return rc;

fail_all:
    for (size_t i = 0; i < n; i++) {
        w[i].rc = rc;
        (void)fv_error_set(&w[i].err, rc, SIZE_MAX, "the write could not be applied");
    }
    return rc;
}
