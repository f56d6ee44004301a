/*
 * test_records.c: writes (insert/update/delete by ID and by criteria),
 * validation and conflicts, group commit under threads, change-log
 * atomicity, queries with keyset cursors, counts and persistence.
 */
#include <pthread.h>

#include "store_fixture.h"

static void test_fv_store_write_insert_get_ok(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    assert_int_equal(fx_insert(f, f->patient,
                               "{\"Patient_Number\":\"P002577\",\"Age\":41,"
                               "\"Full_Name\":{\"first_name\":\"Ann\",\"last_name\":\"Lee\"}}",
                               &id, NULL),
                     FV_OK);
    assert_true(id >= UINT64_C(4000000000000000001));
    json_t *row = fx_get(f, f->patient, id);
    assert_non_null(row);
    char idtxt[32];
    (void)snprintf(idtxt, sizeof(idtxt), "%llu", (unsigned long long)id);
    assert_string_equal(json_string_value(json_object_get(row, "ID")), idtxt);
    assert_string_equal(json_string_value(json_object_get(row, "Patient_Number")), "P002577");
    assert_string_equal(json_string_value(json_object_get(row, "Age")), "41");
    assert_string_equal(json_string_value(json_object_get(row, "Blood_Type")), "O-");
    assert_string_equal(json_string_value(json_object_get(row, "Seq")), "P-1");
    json_t *name = json_object_get(row, "Full_Name");
    assert_string_equal(json_string_value(json_object_get(name, "last_name")), "Lee");
    json_decref(row);
}

static void test_fv_store_write_insert_ids_increase(void **state)
{
    struct fx *f = *state;
    uint64_t a = 0, b = 0;
    fx_patient(f, "A", 1, &a);
    fx_patient(f, "B", 2, &b);
    assert_int_equal(a, UINT64_C(4000000000000000001));
    assert_true(b > a);
}

static void test_fv_store_write_insert_ids_never_reused(void **state)
{
    struct fx *f = *state;
    uint64_t a = 0, b = 0;
    struct fv_error err;
    fx_patient(f, "A", 1, &a);
    /* a failed insert consumes no visible ID but the next one is still new */
    assert_int_equal(fx_insert(f, f->patient, "{\"Patient_Number\":\"A\"}", NULL, &err),
                     FV_E_CONFLICT);
    json_t *d = json_pack("{}");
    struct fv_store_write w = {.op = FV_STORE_DELETE_ID, .form = f->patient, .id = a, .data = d};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    json_decref(d);
    fx_reopen(f);
    fx_patient(f, "B", 2, &b);
    assert_true(b > a);
}

static void test_fv_store_write_insert_unknown_field(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    assert_int_equal(
        fx_insert(f, f->patient, "{\"Patient_Number\":\"A\",\"Colour\":\"red\"}", NULL, &err),
        FV_E_NO_FIELD);
    assert_non_null(strstr(err.msg, "'Colour'"));
    assert_int_equal(fx_count(f, f->patient), 0);
}

static void test_fv_store_write_insert_required_missing(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    assert_int_equal(fx_insert(f, f->patient, "{\"Age\":3}", NULL, &err), FV_E_VALIDATION);
    assert_non_null(strstr(err.msg, "'Patient_Number'"));
    assert_int_equal(fx_insert(f, f->patient, "{\"Patient_Number\":\"\"}", NULL, &err),
                     FV_E_VALIDATION);
    assert_int_equal(fx_count(f, f->patient), 0);
    assert_int_equal(fx_changelog_n(f, "insert"), 0);
}

static void test_fv_store_write_insert_bad_value(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    assert_int_equal(
        fx_insert(f, f->patient, "{\"Patient_Number\":\"A\",\"Blood_Type\":\"Z\"}", NULL, &err),
        FV_E_VALIDATION);
    assert_int_not_equal(
        fx_insert(f, f->patient, "{\"Patient_Number\":\"A\",\"Age\":\"x\"}", NULL, &err), FV_OK);
    assert_int_equal(
        fx_insert(f, f->patient, "{\"Patient_Number\":\"A\",\"Seq\":\"5\"}", NULL, &err),
        FV_E_VALIDATION);
    assert_int_equal(fx_count(f, f->patient), 0);
}

static void test_fv_store_write_insert_not_object(void **state)
{
    struct fx *f = *state;
    json_t *d = json_pack("[i]", 1);
    struct fv_store_write w = {.op = FV_STORE_INSERT, .form = f->patient, .data = d};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_BODY);
    json_decref(d);
}

static void test_fv_store_write_insert_unique_conflict(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    fx_patient(f, "A", 1, NULL);
    assert_int_equal(fx_insert(f, f->patient, "{\"Patient_Number\":\"A\"}", NULL, &err),
                     FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'Patient_Number'"));
    assert_int_equal(fx_count(f, f->patient), 1);
    assert_int_equal(fx_changelog_n(f, "insert"), 1);
}

static void test_fv_store_write_batch_one_failure_others_commit(void **state)
{
    struct fx *f = *state;
    json_t *d[3] = {json_pack("{s:s}", "Patient_Number", "A"),
                    json_pack("{s:s}", "Patient_Number", "A"),
                    json_pack("{s:s}", "Patient_Number", "B")};
    struct fv_store_write w[3];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < 3; i++) {
        w[i].op = FV_STORE_INSERT;
        w[i].form = f->patient;
        w[i].data = d[i];
    }
    assert_int_equal(fv_store_write(f->t, f->app, w, 3, "t"), FV_OK);
    assert_int_equal(w[0].rc, FV_OK);
    assert_int_equal(w[1].rc, FV_E_CONFLICT);
    assert_int_equal(w[1].ret_id, 0);
    assert_int_equal(w[2].rc, FV_OK);
    assert_int_equal(fx_count(f, f->patient), 2);
    /* the failed write left no change-log row; seqs stay contiguous */
    json_t *log = NULL;
    assert_int_equal(fv_store_changelog_read(f->t, 0, 100, &log), FV_OK);
    assert_int_equal(json_array_size(log), 3); /* schema + 2 inserts */
    for (size_t i = 0; i < json_array_size(log); i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(log, i), "seq")),
                         (json_int_t)i + 1);
    json_t *last = json_array_get(log, 2);
    assert_string_equal(json_string_value(json_object_get(last, "op")), "insert");
    assert_string_equal(json_string_value(json_object_get(last, "form")), "Patient");
    assert_string_equal(json_string_value(json_object_get(last, "actor")), "t");
    json_t *row = json_object_get(last, "row");
    assert_string_equal(json_string_value(json_object_get(row, "c_Patient_Number")), "B");
    json_decref(log);
    for (int i = 0; i < 3; i++)
        json_decref(d[i]);
}

static void test_fv_store_write_insert_lookup_missing(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    assert_int_equal(fx_insert(f, f->visit, "{\"Patient\":\"4000000000000000999\"}", NULL, &err),
                     FV_E_VALIDATION);
    assert_non_null(strstr(err.msg, "'Patient'"));
    assert_int_equal(fx_count(f, f->visit), 0);
}

static void test_fv_store_write_insert_lookup_display(void **state)
{
    struct fx *f = *state;
    uint64_t pid = 0, vid = 0;
    char json[128];
    fx_patient(f, "P002577", 50, &pid);
    (void)snprintf(json, sizeof(json), "{\"Patient\":\"%llu\",\"Fee\":\"12.50\"}",
                   (unsigned long long)pid);
    assert_int_equal(fx_insert(f, f->visit, json, &vid, NULL), FV_OK);
    json_t *row = fx_get(f, f->visit, vid);
    json_t *lk = json_object_get(row, "Patient");
    assert_non_null(lk);
    assert_string_equal(json_string_value(json_object_get(lk, "zc_display_value")), "P002577");
    assert_string_equal(json_string_value(json_object_get(row, "Fee")), "12.50");
    json_decref(row);
}

static void test_fv_store_write_insert_cells_lookup_by_display(void **state)
{
    struct fx *f = *state;
    uint64_t pid = 0;
    fx_patient(f, "P002577", 50, &pid);
    const struct fv_field *fields[2] = {fv_model_form_field(f->visit, "Patient"),
                                        fv_model_form_field(f->visit, "Fee")};
    struct fv_str cells[2] = {FV_STR_LIT("P002577"), FV_STR_LIT("3.00")};
    struct fv_str bad[2] = {FV_STR_LIT("P999"), FV_STR_LIT("3.00")};
    struct fv_store_write w[2];
    memset(w, 0, sizeof(w));
    w[0].op = w[1].op = FV_STORE_INSERT;
    w[0].form = w[1].form = f->visit;
    w[0].cell_fields = w[1].cell_fields = fields;
    w[0].cells = cells;
    w[1].cells = bad;
    w[0].n_cells = w[1].n_cells = 2;
    assert_int_equal(fv_store_write(f->t, f->app, w, 2, "csv"), FV_OK);
    assert_int_equal(w[0].rc, FV_OK);
    assert_int_equal(w[1].rc, FV_E_VALIDATION);
    json_t *row = fx_get(f, f->visit, w[0].ret_id);
    json_t *lk = json_object_get(row, "Patient");
    char idtxt[32];
    (void)snprintf(idtxt, sizeof(idtxt), "%llu", (unsigned long long)pid);
    assert_string_equal(json_string_value(json_object_get(lk, "ID")), idtxt);
    json_decref(row);
}

static void test_fv_store_write_update_id_ok(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    fx_patient(f, "A", 1, &id);
    json_t *d = json_pack("{s:i}", "Age", 77);
    struct fv_store_write w = {.op = FV_STORE_UPDATE_ID, .form = f->patient, .id = id, .data = d};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "editor"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    assert_int_equal(w.ret_id, id);
    json_decref(d);
    json_t *row = fx_get(f, f->patient, id);
    assert_string_equal(json_string_value(json_object_get(row, "Age")), "77");
    assert_string_equal(json_string_value(json_object_get(row, "Patient_Number")), "A");
    json_decref(row);
    assert_int_equal(fx_changelog_n(f, "update"), 1);
}

static void test_fv_store_write_update_id_missing(void **state)
{
    struct fx *f = *state;
    json_t *d = json_pack("{s:i}", "Age", 77);
    struct fv_store_write w = {.op = FV_STORE_UPDATE_ID,
                               .form = f->patient,
                               .id = UINT64_C(4000000000000000555),
                               .data = d};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_NO_RECORD);
    w.id = 0;
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_NO_RECORD);
    json_decref(d);
    assert_int_equal(fx_changelog_n(f, "update"), 0);
}

static void test_fv_store_write_update_id_required_cleared(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    fx_patient(f, "A", 1, &id);
    json_t *d = json_pack("{s:s}", "Patient_Number", "");
    struct fv_store_write w = {.op = FV_STORE_UPDATE_ID, .form = f->patient, .id = id, .data = d};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_VALIDATION);
    json_decref(d);
}

static void test_fv_store_write_update_id_unique_conflict(void **state)
{
    struct fx *f = *state;
    uint64_t a = 0, b = 0;
    fx_patient(f, "A", 1, &a);
    fx_patient(f, "B", 1, &b);
    json_t *d = json_pack("{s:s}", "Patient_Number", "A");
    struct fv_store_write w = {.op = FV_STORE_UPDATE_ID, .form = f->patient, .id = b, .data = d};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_CONFLICT);
    assert_non_null(strstr(w.err.msg, "'Patient_Number'"));
    json_decref(d);
}

static void test_fv_store_write_update_id_where_excludes(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    struct fv_sql_where where;
    fx_patient(f, "A", 1, &id);
    fx_where(f, f->patient, "Age > 10", &where);
    json_t *d = json_pack("{s:i}", "Age", 5);
    struct fv_store_write w = {
        .op = FV_STORE_UPDATE_ID, .form = f->patient, .id = id, .data = d, .where = &where};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_NO_RECORD);
    json_decref(d);
    fv_model_where_release(&where);
}

static void test_fv_store_write_delete_id_ok(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    fx_patient(f, "A", 1, &id);
    struct fv_store_write w = {.op = FV_STORE_DELETE_ID, .form = f->patient, .id = id};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    assert_null(fx_get(f, f->patient, id));
    assert_int_equal(fx_changelog_n(f, "delete"), 1);
    /* deleting again: no record */
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_NO_RECORD);
    assert_int_equal(fx_changelog_n(f, "delete"), 1);
}

static void test_fv_store_write_update_where_ok(void **state)
{
    struct fx *f = *state;
    struct fv_sql_where where;
    for (int i = 0; i < 5; i++) {
        char num[8];
        (void)snprintf(num, sizeof(num), "N%d", i);
        fx_patient(f, num, i * 10, NULL);
    }
    fx_where(f, f->patient, "Age >= 20", &where);
    json_t *d = json_pack("{s:s}", "Blood_Type", "A+");
    struct fv_store_write w = {
        .op = FV_STORE_UPDATE_WHERE, .form = f->patient, .data = d, .where = &where, .limit = 200};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    assert_int_equal(w.n_results, 3);
    assert_false(w.more_records);
    for (size_t i = 0; i < w.n_results; i++)
        assert_int_equal(w.results[i].rc, FV_OK);
    fv_free(w.results);
    int64_t n = 0;
    struct fv_sql_where w2;
    fx_where(f, f->patient, "Blood_Type == \"A+\"", &w2);
    assert_int_equal(fv_store_count(f->t, f->patient, &w2, &n), FV_OK);
    assert_int_equal(n, 3);
    fv_model_where_release(&w2);
    json_decref(d);
    fv_model_where_release(&where);
}

static void test_fv_store_write_where_too_many_matches(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 4; i++) {
        char num[8];
        (void)snprintf(num, sizeof(num), "N%d", i);
        fx_patient(f, num, 1, NULL);
    }
    size_t before = fx_changelog_n(f, NULL);
    struct fv_store_write w = {.op = FV_STORE_DELETE_WHERE, .form = f->patient, .limit = 3};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_TOO_MANY_MATCHES);
    assert_null(w.results);
    assert_int_equal(fx_count(f, f->patient), 4);
    assert_int_equal(fx_changelog_n(f, NULL), before);
}

static void test_fv_store_write_where_process_until_limit(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 4; i++) {
        char num[8];
        (void)snprintf(num, sizeof(num), "N%d", i);
        fx_patient(f, num, 1, NULL);
    }
    struct fv_store_write w = {
        .op = FV_STORE_DELETE_WHERE, .form = f->patient, .limit = 3, .process_until_limit = true};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    assert_int_equal(w.n_results, 3);
    assert_true(w.more_records);
    fv_free(w.results);
    assert_int_equal(fx_count(f, f->patient), 1);
    assert_int_equal(fx_changelog_n(f, "delete"), 3);
}

static void test_fv_store_write_where_no_match(void **state)
{
    struct fx *f = *state;
    struct fv_sql_where where;
    fx_patient(f, "A", 1, NULL);
    fx_where(f, f->patient, "Age > 100", &where);
    struct fv_store_write w = {
        .op = FV_STORE_DELETE_WHERE, .form = f->patient, .limit = 200, .where = &where};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_NO_MATCH);
    w.limit = 0;
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_PARAM);
    fv_model_where_release(&where);
}

static void test_fv_store_write_update_where_partial_failure(void **state)
{
    struct fx *f = *state;
    fx_patient(f, "A", 1, NULL);
    fx_patient(f, "B", 1, NULL);
    /* setting the unique field on both: the first wins, the second conflicts */
    json_t *d = json_pack("{s:s}", "Patient_Number", "Z");
    struct fv_store_write w = {
        .op = FV_STORE_UPDATE_WHERE, .form = f->patient, .data = d, .limit = 200};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    assert_int_equal(w.n_results, 2);
    assert_int_equal(w.results[0].rc, FV_OK);
    assert_int_equal(w.results[1].rc, FV_E_CONFLICT);
    fv_free(w.results);
    json_decref(d);
    assert_int_equal(fx_changelog_n(f, "update"), 1);
}

/* ---------------------------------------------------------- group commit */

#define GC_THREADS 8
#define GC_EACH 40

struct gc_arg {
    struct fx *f;
    int thread;
    int ok;
    uint64_t ids[GC_EACH];
};

static void *gc_worker(void *p)
{
    struct gc_arg *a = p;
    for (int i = 0; i < GC_EACH; i++) {
        char num[16];
        (void)snprintf(num, sizeof(num), "T%d_%d", a->thread, i);
        json_t *d = json_pack("{s:s,s:i}", "Patient_Number", num, "Age", i);
        struct fv_store_write w = {.op = FV_STORE_INSERT, .form = a->f->patient, .data = d};
        int rc = fv_store_write(a->f->t, a->f->app, &w, 1, "gc");
        if (rc == FV_OK && w.rc == FV_OK) {
            a->ids[a->ok++] = w.ret_id;
        }
        json_decref(d);
    }
    return NULL;
}

static void test_fv_store_write_group_commit_threads(void **state)
{
    struct fx *f = *state;
    pthread_t th[GC_THREADS];
    struct gc_arg args[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].f = f;
        args[i].thread = i;
        assert_int_equal(pthread_create(&th[i], NULL, gc_worker, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    int total = 0;
    for (int i = 0; i < GC_THREADS; i++) {
        assert_int_equal(args[i].ok, GC_EACH);
        total += args[i].ok;
    }
    assert_int_equal(fx_count(f, f->patient), total);
    /* every acknowledged ID is present, after reopening too */
    fx_reopen(f);
    assert_int_equal(fx_count(f, f->patient), total);
    for (int i = 0; i < GC_THREADS; i++) {
        for (int k = 0; k < GC_EACH; k += 7) {
            json_t *row = fx_get(f, f->patient, args[i].ids[k]);
            assert_non_null(row);
            json_decref(row);
        }
    }
    json_t *log = NULL;
    assert_int_equal(fv_store_changelog_read(f->t, 0, 100000, &log), FV_OK);
    assert_int_equal(json_array_size(log), (size_t)total + 1);
    for (size_t i = 0; i < json_array_size(log); i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(log, i), "seq")),
                         (json_int_t)i + 1);
    json_decref(log);
}

static void test_fv_store_changelog_read_after_seq(void **state)
{
    struct fx *f = *state;
    json_t *log = NULL;
    fx_patient(f, "A", 1, NULL);
    fx_patient(f, "B", 1, NULL);
    assert_int_equal(fv_store_changelog_read(f->t, 2, 10, &log), FV_OK);
    assert_int_equal(json_array_size(log), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(log, 0), "seq")), 3);
    assert_true(json_is_string(json_object_get(json_array_get(log, 0), "record_id")));
    json_decref(log);
    assert_int_equal(fv_store_changelog_read(f->t, 3, 10, &log), FV_OK);
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);
    assert_int_equal(fv_store_changelog_read(f->t, 0, 1, &log), FV_OK);
    assert_int_equal(json_array_size(log), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "op")), "schema");
    json_decref(log);
}

/* ----------------------------------------------------------------- reads */

static void collect_pages(struct fx *f, const char *sort, bool desc, size_t page, size_t expect,
                          uint64_t *seen_ids)
{
    char cursor[128] = "";
    size_t got = 0, pages = 0;
    const char *cols[] = {"Patient_Number", "Age"};
    for (;;) {
        json_t *rows = NULL;
        struct fv_store_query q = {.form = f->patient,
                                   .columns = cols,
                                   .n_columns = 2,
                                   .sort_field = sort,
                                   .sort_desc = desc,
                                   .limit = page,
                                   .cursor = cursor[0] ? cursor : NULL};
        char next[128];
        assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_OK);
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r)
        {
            uint64_t id = 0;
            const char *s = json_string_value(json_object_get(r, "ID"));
            assert_int_equal(fv_parse_u64(s, strlen(s), &id), FV_OK);
            assert_true(got < expect);
            seen_ids[got++] = id;
        }
        json_decref(rows);
        pages++;
        if (!next[0])
            break;
        memcpy(cursor, next, sizeof(cursor));
        assert_true(pages < 100);
    }
    assert_int_equal(got, expect);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_fv_store_query_cursor_paging_1000(void **state)
{
    struct fx *f = *state;
    enum { N = 1000 };
    struct fv_store_write *w = calloc(N, sizeof(*w));
    json_t **d = calloc(N, sizeof(*d));
    for (int i = 0; i < N; i++) {
        char num[16];
        (void)snprintf(num, sizeof(num), "R%04d", i);
        /* every 10th has no Age: NULLs must page correctly too */
        d[i] = i % 10 == 0 ? json_pack("{s:s}", "Patient_Number", num)
                           : json_pack("{s:s,s:i}", "Patient_Number", num, "Age", i % 37);
        w[i].op = FV_STORE_INSERT;
        w[i].form = f->patient;
        w[i].data = d[i];
    }
    assert_int_equal(fv_store_write(f->t, f->app, w, N, "bulk"), FV_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].rc, FV_OK);
        json_decref(d[i]);
    }
    uint64_t *seen = calloc(N, sizeof(*seen));
    const struct {
        const char *sort;
        bool desc;
        size_t page;
    } cases[] = {{NULL, false, 200},
                 {NULL, true, 333},
                 {"Age", false, 200},
                 {"Age", true, 150},
                 {"Patient_Number", true, 200},
                 {"Added_Time", false, 999}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        collect_pages(f, cases[c].sort, cases[c].desc, cases[c].page, N, seen);
        if (!cases[c].sort) {
            for (int i = 1; i < N; i++)
                assert_true(cases[c].desc ? seen[i] < seen[i - 1] : seen[i] > seen[i - 1]);
        }
        qsort(seen, N, sizeof(*seen), cmp_u64);
        for (int i = 0; i < N; i++) {
            assert_int_equal(seen[i], w[i].ret_id); /* each exactly once */
        }
    }
    free(seen);
    free(w);
    free(d);
}

static void test_fv_store_query_cursor_malformed(void **state)
{
    struct fx *f = *state;
    json_t *rows = NULL;
    char next[128];
    fx_patient(f, "A", 1, NULL);
    const char *bad[] = {"!!!", "AAAA", "x", "AQIDBAUGBwgJCgsMDQ4PEA", ""};
    for (size_t i = 0; i + 1 < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fv_store_query q = {.form = f->patient, .limit = 10, .cursor = bad[i]};
        assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_E_CURSOR);
        assert_string_equal(next, "");
    }
    /* a cursor of one sort order is refused by another */
    fx_patient(f, "B", 2, NULL);
    struct fv_store_query q = {.form = f->patient, .limit = 1};
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_OK);
    json_decref(rows);
    assert_true(next[0] != '\0');
    q.cursor = next;
    q.sort_field = "Age";
    char again[128];
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, again, sizeof(again)), FV_E_CURSOR);
}

static void test_fv_store_query_cursor_long_sort_value(void **state)
{
    struct fx *f = *state;
    const char *nums[] = {"AAAAAAAAAAAAAAA1", "AAAAAAAAAAAAAAA2", "AAAAAAAAAAAAAAA3",
                          "AAAAAAAAAAAAAAA4", "AAAAAAAAAAAAAAA5"};
    uint64_t ids[5];
    char cursor[40], next[40];
    json_t *rows = NULL;
    for (int i = 0; i < 5; i++)
        fx_patient(f, nums[i], i, &ids[i]);
    /* a 40-byte cursor cannot embed the 16-byte value: re-read by ID */
    struct fv_store_query q = {.form = f->patient, .sort_field = "Patient_Number", .limit = 2};
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, cursor, sizeof(cursor)), FV_OK);
    assert_int_equal(json_array_size(rows), 2);
    json_decref(rows);
    assert_true(cursor[0] != '\0');
    q.cursor = cursor;
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_OK);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(rows, 0), "Patient_Number")), nums[2]);
    json_decref(rows);
    /* the record the cursor points after is deleted: stale */
    struct fv_store_write w = {.op = FV_STORE_DELETE_ID, .form = f->patient, .id = ids[1]};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_E_CURSOR);
}

static void test_fv_store_query_unknown_column(void **state)
{
    struct fx *f = *state;
    json_t *rows = NULL;
    char next[128];
    const char *cols[] = {"Nope"};
    struct fv_store_query q = {.form = f->patient, .columns = cols, .n_columns = 1, .limit = 10};
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_E_NO_FIELD);
    struct fv_store_query q2 = {.form = f->patient, .sort_field = "Nope", .limit = 10};
    assert_int_equal(fv_store_query(f->t, f->app, &q2, &rows, next, sizeof(next)), FV_E_NO_FIELD);
    struct fv_store_query q3 = {.form = f->patient, .limit = 0};
    assert_int_equal(fv_store_query(f->t, f->app, &q3, &rows, next, sizeof(next)), FV_E_PARAM);
}

static void test_fv_store_query_system_fields_and_offset(void **state)
{
    struct fx *f = *state;
    json_t *rows = NULL;
    char next[128];
    fx_patient(f, "A", 1, NULL);
    fx_patient(f, "B", 2, NULL);
    fx_patient(f, "C", 3, NULL);
    const char *cols[] = {"ID", "Added_Time", "Modified_User", "Age"};
    struct fv_store_query q = {
        .form = f->patient, .columns = cols, .n_columns = 4, .offset = 1, .limit = 1};
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_OK);
    assert_int_equal(json_array_size(rows), 1);
    json_t *r = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(r, "Age")), "2");
    assert_string_equal(json_string_value(json_object_get(r, "Modified_User")), "tester");
    const char *at = json_string_value(json_object_get(r, "Added_Time"));
    /* dd-MMM-yyyy HH:mm:ss */
    assert_non_null(at);
    assert_int_equal(strlen(at), 20);
    assert_int_equal(at[2], '-');
    assert_int_equal(at[11], ' ');
    assert_null(json_object_get(r, "Patient_Number"));
    assert_true(next[0] != '\0');
    json_decref(rows);
    /* columns given but empty: ID only */
    struct fv_store_query q2 = {.form = f->patient, .columns = cols, .n_columns = 0, .limit = 1};
    assert_int_equal(fv_store_query(f->t, f->app, &q2, &rows, next, sizeof(next)), FV_OK);
    assert_int_equal(json_object_size(json_array_get(rows, 0)), 1);
    json_decref(rows);
}

static void test_fv_store_query_where(void **state)
{
    struct fx *f = *state;
    json_t *rows = NULL;
    char next[128];
    struct fv_sql_where where;
    fx_patient(f, "A", 1, NULL);
    fx_patient(f, "B", 2, NULL);
    fx_where(f, f->patient, "Age == 2", &where);
    struct fv_store_query q = {.form = f->patient, .where = &where, .limit = 10};
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_OK);
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(rows, 0), "Patient_Number")), "B");
    assert_string_equal(next, "");
    json_decref(rows);
    int64_t n = 0;
    assert_int_equal(fv_store_count(f->t, f->patient, &where, &n), FV_OK);
    assert_int_equal(n, 1);
    fv_model_where_release(&where);
}

static void test_fv_store_query_where_through_lookup(void **state)
{
    struct fx *f = *state;
    json_t *rows = NULL;
    char next[128], json[128];
    struct fv_sql_where where;
    uint64_t p1 = 0, p2 = 0;
    fx_patient(f, "P1", 1, &p1);
    fx_patient(f, "P2", 2, &p2);
    (void)snprintf(json, sizeof(json), "{\"Patient\":\"%llu\"}", (unsigned long long)p1);
    assert_int_equal(fx_insert(f, f->visit, json, NULL, NULL), FV_OK);
    (void)snprintf(json, sizeof(json), "{\"Patient\":\"%llu\"}", (unsigned long long)p2);
    assert_int_equal(fx_insert(f, f->visit, json, NULL, NULL), FV_OK);
    /* the compiler's lookup subquery must name the store's table */
    fx_where(f, f->visit, "Patient.Patient_Number == \"P2\"", &where);
    struct fv_store_query q = {.form = f->visit, .where = &where, .limit = 10};
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, next, sizeof(next)), FV_OK);
    assert_int_equal(json_array_size(rows), 1);
    json_t *lk = json_object_get(json_array_get(rows, 0), "Patient");
    assert_string_equal(json_string_value(json_object_get(lk, "zc_display_value")), "P2");
    json_decref(rows);
    fv_model_where_release(&where);
}

static void test_fv_store_count_unknown_form(void **state)
{
    struct fx *f = *state;
    struct fv_form fake;
    int64_t n = 0;
    memset(&fake, 0, sizeof(fake));
    assert_int_equal(fv_store_count(f->t, &fake, NULL, &n), FV_E_NO_FORM);
    assert_int_equal(fv_store_count(f->t, NULL, NULL, &n), FV_E_NO_FORM);
}

static void test_fv_store_write_reopen_persistence(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    fx_patient(f, "KEEP", 9, &id);
    fx_reopen(f);
    json_t *row = fx_get(f, f->patient, id);
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "Patient_Number")), "KEEP");
    json_decref(row);
    /* autonumber continues after reopen */
    uint64_t id2 = 0;
    fx_patient(f, "NEXT", 1, &id2);
    row = fx_get(f, f->patient, id2);
    assert_string_equal(json_string_value(json_object_get(row, "Seq")), "P-2");
    json_decref(row);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fv_store_write_insert_get_ok),
        T(test_fv_store_write_insert_ids_increase),
        T(test_fv_store_write_insert_ids_never_reused),
        T(test_fv_store_write_insert_unknown_field),
        T(test_fv_store_write_insert_required_missing),
        T(test_fv_store_write_insert_bad_value),
        T(test_fv_store_write_insert_not_object),
        T(test_fv_store_write_insert_unique_conflict),
        T(test_fv_store_write_batch_one_failure_others_commit),
        T(test_fv_store_write_insert_lookup_missing),
        T(test_fv_store_write_insert_lookup_display),
        T(test_fv_store_write_insert_cells_lookup_by_display),
        T(test_fv_store_write_update_id_ok),
        T(test_fv_store_write_update_id_missing),
        T(test_fv_store_write_update_id_required_cleared),
        T(test_fv_store_write_update_id_unique_conflict),
        T(test_fv_store_write_update_id_where_excludes),
        T(test_fv_store_write_delete_id_ok),
        T(test_fv_store_write_update_where_ok),
        T(test_fv_store_write_where_too_many_matches),
        T(test_fv_store_write_where_process_until_limit),
        T(test_fv_store_write_where_no_match),
        T(test_fv_store_write_update_where_partial_failure),
        T(test_fv_store_write_group_commit_threads),
        T(test_fv_store_changelog_read_after_seq),
        T(test_fv_store_query_cursor_paging_1000),
        T(test_fv_store_query_cursor_malformed),
        T(test_fv_store_query_cursor_long_sort_value),
        T(test_fv_store_query_unknown_column),
        T(test_fv_store_query_system_fields_and_offset),
        T(test_fv_store_query_where),
        T(test_fv_store_query_where_through_lookup),
        T(test_fv_store_count_unknown_form),
        T(test_fv_store_write_reopen_persistence),
    };
    (void)fx_setup_bare;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
