/*
 * api/import_csv.c: CSV import (RFC 4180 via libcsv) into a form. The header
 * row maps columns to fields; each data row becomes one insert through the
 * store's group-commit path, so each row is written whole or not at all,
 * valid rows are kept and failing rows are reported with their row number
 * (the header is row 1, as in a spreadsheet).
 */
#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api_int.h"

#define IMPORT_BATCH 500
#define IMPORT_MAX_COLS 256
#define IMPORT_MAX_CELL (1u << 20)

struct import_row {
    struct fv_str cells[IMPORT_MAX_COLS];
    size_t n;
    size_t row_number;
};

struct import_state {
    struct fv_store *store;
    struct fv_tenant *tenant;
    const struct fv_app *app;
    const struct fv_form *form;
    const struct fv_field *fields[IMPORT_MAX_COLS]; /* column -> field */
    size_t n_cols;
    bool header_done;
    struct import_row cur;
    size_t row_number; /* of the row being read */
    struct import_row *batch;
    size_t n_batch;
    struct fv_api_import_stats stats;
    void (*on_error)(void *arg, size_t row, const char *msg);
    void *arg;
    struct fv_error *err;
    int rc;
};

static void row_clear(struct import_row *r)
{
    for (size_t i = 0; i < r->n; i++)
        fv_free((void *)r->cells[i].p);
    r->n = 0;
}

static void report(struct import_state *st, size_t row, const char *msg)
{
    st->stats.failed++;
    if (st->on_error)
        st->on_error(st->arg, row, msg);
}

static int flush_batch(struct import_state *st)
{
    struct fv_store_write *w = NULL;
    int rc = FV_OK;
    if (st->n_batch == 0)
        return FV_OK;
    w = fv_calloc(st->n_batch, sizeof(*w));
    if (!w) {
        rc = FV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < st->n_batch; i++) {
        w[i].op = FV_STORE_INSERT;
        w[i].form = st->form;
        w[i].cell_fields = st->fields;
        w[i].cells = st->batch[i].cells;
        w[i].n_cells = st->batch[i].n;
    }
    rc = fv_store_write(st->tenant, st->app, w, st->n_batch, "cli:import");
    if (rc != FV_OK) {
        (void)fv_error_set(st->err, rc, SIZE_MAX, "writing rows %zu..%zu failed: %s",
                           st->batch[0].row_number, st->batch[st->n_batch - 1].row_number,
                           fv_err_describe(rc));
        goto out;
    }
    for (size_t i = 0; i < st->n_batch; i++) {
        if (w[i].rc == FV_OK) {
            st->stats.imported++;
        } else {
            report(st, st->batch[i].row_number,
                   w[i].err.msg[0] ? w[i].err.msg : fv_err_describe(w[i].rc));
        }
    }
out:
    for (size_t i = 0; i < st->n_batch; i++)
        row_clear(&st->batch[i]);
    st->n_batch = 0;
    fv_free(w);
    return rc;
}

static int map_header(struct import_state *st)
{
    const struct fv_form *form = st->form;
    if (st->cur.n == 0)
        return fv_error_set(st->err, FV_E_INVALID, SIZE_MAX, "the header row is empty");
    for (size_t i = 0; i < st->cur.n; i++) {
        const char *name = st->cur.cells[i].p;
        const struct fv_field *f = fv_model_form_field(form, name);
        if (!f)
            f = fv_model_form_field_by_display(form, name);
        if (!f)
            return fv_error_set(st->err, FV_E_INVALID, SIZE_MAX,
                                "column %zu '%.64s' matches no field of form '%s' (by link or "
                                "display name)",
                                i + 1, name, form->link_name);
        for (size_t j = 0; j < i; j++)
            if (st->fields[j] == f)
                return fv_error_set(st->err, FV_E_INVALID, SIZE_MAX,
                                    "columns %zu and %zu both map to field '%s'", j + 1, i + 1,
                                    f->link_name);
        st->fields[i] = f;
    }
    st->n_cols = st->cur.n;
    row_clear(&st->cur);
    st->header_done = true;
    return FV_OK;
}

static void on_cell(void *s, size_t len, void *data)
{
    struct import_state *st = data;
    if (st->rc != FV_OK)
        return;
    if (st->cur.n == IMPORT_MAX_COLS) {
        st->rc = fv_error_set(st->err, FV_E_LIMIT, SIZE_MAX, "row %zu has more than %d columns",
                              st->row_number, IMPORT_MAX_COLS);
        return;
    }
    char *copy = fv_strndup(s ? s : "", s ? len : 0);
    if (!copy) {
        st->rc = FV_E_NOMEM;
        return;
    }
    st->cur.cells[st->cur.n].p = copy;
    st->cur.cells[st->cur.n].len = s ? len : 0;
    st->cur.n++;
}

static void on_row(int term, void *data)
{
    struct import_state *st = data;
    (void)term;
    size_t row = ++st->row_number;
    if (st->rc != FV_OK)
        return;
    if (!st->header_done) {
        st->rc = map_header(st);
        return;
    }
    st->stats.rows++;
    if (st->cur.n != st->n_cols) {
        char msg[96];
        (void)snprintf(msg, sizeof(msg), "row has %zu columns, the header has %zu", st->cur.n,
                       st->n_cols);
        report(st, row, msg);
        row_clear(&st->cur);
        return;
    }
    st->cur.row_number = row;
    st->batch[st->n_batch] = st->cur; /* moves the cells */
    st->cur.n = 0;
    if (++st->n_batch == IMPORT_BATCH)
        st->rc = flush_batch(st);
}

int fv_api_import_csv(struct fv_store *s, const char *tenant, const char *app, const char *form,
                      const char *path, void (*on_error)(void *arg, size_t row, const char *msg),
                      void (*progress)(void *arg, uint64_t done, uint64_t total, size_t rows),
                      void *arg, struct fv_api_import_stats *ret_stats, struct fv_error *reterr)
{
    struct import_state *st = NULL;
    struct csv_parser p;
    bool parser_ready = false;
    FILE *f = NULL;
    char *chunk = NULL;
    struct fv_store_tenant_info info;
    int rc;

    st = fv_calloc(1, sizeof(*st));
    chunk = fv_malloc(65536);
    if (!st || !chunk) {
        rc = FV_E_NOMEM;
        goto out;
    }
    st->batch = fv_calloc(IMPORT_BATCH, sizeof(*st->batch));
    if (!st->batch) {
        rc = FV_E_NOMEM;
        goto out;
    }
    st->store = s;
    st->on_error = on_error;
    st->arg = arg;
    st->err = reterr;
    rc = fv_store_tenant_find(s, tenant, &info);
    if (rc != FV_OK) {
        (void)fv_error_set(reterr, rc, SIZE_MAX, "no tenant '%.64s'", tenant);
        goto out;
    }
    if ((rc = fv_store_tenant_acquire(s, info.id, &st->tenant)) != FV_OK)
        goto out;
    if ((rc = fv_store_app_get(st->tenant, app, &st->app)) != FV_OK) {
        (void)fv_error_set(reterr, rc, SIZE_MAX, "no application '%.64s'", app);
        goto out;
    }
    st->form = fv_model_app_form(st->app, form);
    if (!st->form) {
        rc = fv_error_set(reterr, FV_E_NO_FORM, SIZE_MAX, "no form '%.64s' in '%s'", form, app);
        goto out;
    }
    f = fopen(path, "rbe");
    if (!f) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot open '%s': %s", path, strerror(errno));
        goto out;
    }
    struct stat sb;
    uint64_t total = fstat(fileno(f), &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if (csv_init(&p, CSV_STRICT | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL) != 0) {
        rc = FV_E_NOMEM;
        goto out;
    }
    parser_ready = true;
    csv_set_realloc_func(&p, fv_realloc);
    csv_set_free_func(&p, fv_free);
    uint64_t done = 0;
    int64_t last = fv_time_mono_ns();
    for (;;) {
        size_t n = fread(chunk, 1, 65536, f);
        if (n == 0) {
            if (ferror(f)) {
                rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "reading '%s' failed", path);
                goto out;
            }
            break;
        }
        if (csv_parse(&p, chunk, n, on_cell, on_row, st) != n) {
            rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "row %zu: malformed csv: %s",
                              st->row_number + 1, csv_strerror(csv_error(&p)));
            goto out;
        }
        if (st->rc != FV_OK) {
            rc = st->rc;
            goto out;
        }
        done += n;
        int64_t now = fv_time_mono_ns();
        if (progress && now - last > 250000000) {
            progress(arg, done, total, st->stats.rows);
            last = now;
        }
    }
    if (csv_fini(&p, on_cell, on_row, st) != 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "row %zu: malformed csv: %s",
                          st->row_number + 1, csv_strerror(csv_error(&p)));
        goto out;
    }
    if ((rc = st->rc) != FV_OK)
        goto out;
    if (!st->header_done) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "'%s' has no header row", path);
        goto out;
    }
    if ((rc = flush_batch(st)) != FV_OK)
        goto out;
    if (progress)
        progress(arg, total, total, st->stats.rows);
    *ret_stats = st->stats;
out:
    if (parser_ready)
        csv_free(&p);
    if (f)
        (void)fclose(f);
    if (st) {
        row_clear(&st->cur);
        if (st->batch)
            for (size_t i = 0; i < st->n_batch; i++)
                row_clear(&st->batch[i]);
        fv_free(st->batch);
        if (st->tenant)
            fv_store_tenant_release(st->tenant);
        if (rc != FV_OK && ret_stats)
            *ret_stats = st->stats;
    }
    fv_free(st);
    fv_free(chunk);
    return rc;
}
