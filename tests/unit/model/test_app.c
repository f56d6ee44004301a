/*
 * Unit tests for model/app.c: parsing the fixture, every validation rule
 * (one failing definition each, with its message), lookups, round trip
 * through fv_model_app_to_json, and an allocation-failure loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "model_fixture.h"

static struct fv_error err;

/* A one-form app whose fields are `fields` (a '-quoted JSON list body). */
static char *app_with(const char *fields, const char *extra)
{
    static char buf[8192];
    (void)snprintf(buf, sizeof(buf),
                   "{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':[%s]},"
                   "{'link_name':'G','fields':[{'link_name':'T','type':'single_line'},"
                   "{'link_name':'M','type':'multi_select','choices':['x']}]}]%s}",
                   fields, extra);
    return buf;
}

/* The definition must fail with FV_E_INVALID and exactly msg. */
static void assert_app_err(const char *json, const char *msg)
{
    struct fv_app *app = fixture_parse(json, &err);
    if (app != NULL) {
        fv_model_app_free(app);
        fail_msg("parsed but should fail: %s", msg);
    }
    assert_int_equal(err.code, FV_E_INVALID);
    assert_string_equal(err.msg, msg);
}

static void assert_app_ok(const char *json)
{
    struct fv_app *app = fixture_parse(json, &err);
    if (app == NULL)
        fail_msg("%s", err.msg);
    fv_model_app_free(app);
}

static void test_app_parse_fixture(void **state)
{
    struct fv_app *app = fixture_parse(fixture_app, &err);
    (void)state;
    assert_non_null(app);
    assert_string_equal(app->link_name, "clinic");
    assert_string_equal(app->date_format, "dd-MMM-yyyy");
    assert_int_equal(app->n_forms, 2);
    const struct fv_form *p = fv_model_app_form(app, "Patient");
    const struct fv_form *v = fv_model_app_form(app, "Visit");
    assert_non_null(p);
    assert_string_equal(v->display_name, "Visit");
    const struct fv_field *f = fv_model_form_field(p, "Patient_Number");
    assert_true(f->required && f->unique);
    assert_int_equal(f->max_length, 16);
    assert_int_equal(fv_model_form_field(p, "Weight")->decimal_places, 1);
    assert_int_equal(fv_model_form_field(p, "Score")->decimal_places, 2);
    assert_string_equal(fv_model_form_field(p, "Ticket")->autonumber_prefix, "P-");
    assert_int_equal(fv_model_form_field(p, "Ticket")->autonumber_start, 100);
    assert_true(fv_model_form_field(p, "Email")->encrypt);
    assert_true(json_is_true(fv_model_form_field(p, "Active")->default_value));
    const struct fv_field *lk = fv_model_form_field(v, "Patient");
    assert_ptr_equal(lk->lookup_target, p);
    assert_string_equal(lk->lookup_display, "Patient_Number");
    assert_true(fv_model_form_field(v, "Others")->lookup_multi);
    assert_int_equal(app->n_reports, 2);
    const struct fv_report *r = fv_model_app_report(app, "All_Patients");
    assert_ptr_equal(r->form, p);
    assert_int_equal(r->n_quick_view, 3);
    assert_int_equal(r->n_detail_view, 6);
    assert_string_equal(r->criteria, "Blood_Type != null");
    assert_string_equal(r->sort_field, "Patient_Number");
    assert_false(r->sort_desc);
    r = fv_model_app_report(app, "Visits");
    assert_int_equal(r->type, FV_REPORT_SPREADSHEET);
    assert_int_equal(r->n_quick_view, 3); /* default: all fields */
    assert_int_equal(r->n_detail_view, 3);
    assert_null(r->sort_field);
    fv_model_app_free(app);
}

static void test_app_lookups(void **state)
{
    struct fv_app *app = fixture_parse(fixture_app, &err);
    (void)state;
    const struct fv_form *p = fv_model_app_form(app, "Patient");
    assert_null(fv_model_app_form(app, "patient"));
    assert_null(fv_model_app_report(app, "Nope"));
    assert_null(fv_model_form_field(p, "email"));
    assert_ptr_equal(fv_model_form_field_by_display(p, "Name"),
                     fv_model_form_field(p, "Full_Name"));
    assert_null(fv_model_form_field_by_display(p, "Nope"));
    fv_model_app_free(app);

    app = fixture_parse("{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':["
                        "{'link_name':'A','display_name':'Same','type':'number'},"
                        "{'link_name':'B','display_name':'Same','type':'number'}]}]}",
                        &err);
    assert_non_null(app);
    assert_null(fv_model_form_field_by_display(&app->forms[0], "Same")); /* ambiguous */
    fv_model_app_free(app);
}

static void test_app_to_json_round_trip(void **state)
{
    struct fv_app *a = fixture_parse(fixture_app, &err), *b = NULL;
    (void)state;
    json_t *j = fv_model_app_to_json(a);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_int_equal(fv_model_app_parse(text, strlen(text), &b, &err), FV_OK);
    assert_true(fv_model_app_equal(a, b));
    json_t *j2 = fv_model_app_to_json(b);
    assert_true(json_equal(j, j2));
    /* and an app that differs is not equal */
    b->forms[0].fields[0].max_length = 3;
    assert_false(fv_model_app_equal(a, b));
    free(text);
    json_decref(j);
    json_decref(j2);
    fv_model_app_free(a);
    fv_model_app_free(b);
}

static void test_app_parse_minimal_defaults(void **state)
{
    struct fv_app *app =
        fixture_parse("{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':["
                      "{'link_name':'N','type':'number'}]}]}",
                      &err);
    (void)state;
    assert_non_null(app);
    assert_string_equal(app->display_name, "a");
    assert_string_equal(app->date_format, "dd-MMM-yyyy");
    assert_string_equal(app->time_zone, "UTC");
    assert_int_equal(app->n_reports, 0);
    assert_string_equal(app->forms[0].fields[0].display_name, "N");
    fv_model_app_free(app);
}

static void test_app_parse_json_errors(void **state)
{
    struct fv_app *app = NULL;
    (void)state;
    fv_error_init(&err);
    assert_int_equal(fv_model_app_parse("{\"format\":", 10, &app, &err), FV_E_INVALID);
    assert_string_equal(err.msg, "not valid JSON at line 1 column 10");
    fv_error_init(&err);
    assert_int_equal(fv_model_app_parse("{\"format\":1,\"format\":1}", 24, &app, &err),
                     FV_E_INVALID);
    assert_non_null(strstr(err.msg, "duplicate key"));
    assert_app_err("[1]", "app: expected a JSON object");
    assert_null(app);
}

static void test_app_parse_top_level_errors(void **state)
{
    (void)state;
    assert_app_err("{'format':1,'link_name':'a','forms':[],'colour':1}",
                   "app: unknown key 'colour'");
    assert_app_err("{'link_name':'a','forms':[]}", "format: missing (must be 1)");
    assert_app_err("{'format':2,'link_name':'a','forms':[]}", "format: must be 1");
    assert_app_err(
        "{'format':1,'link_name':'1a','forms':[]}",
        "app: 'link_name' must be a link name ([A-Za-z][A-Za-z0-9_]*, at most 64 bytes)");
    assert_app_err("{'format':1,'forms':[]}", "app: missing 'link_name'");
    assert_app_err("{'format':1,'link_name':'a__b','forms':[]}",
                   "app: 'link_name' must not contain '__' or end with '_'");
    assert_app_err("{'format':1,'link_name':'a_','forms':[]}",
                   "app: 'link_name' must not contain '__' or end with '_'");
    assert_app_err("{'format':1,'link_name':'a','date_format':'yyyy/MM/dd','forms':[]}",
                   "date_format: unknown date format 'yyyy/MM/dd'");
    assert_app_err("{'format':1,'link_name':'a','forms':[]}",
                   "forms: must be a list of 1 to 200 forms");
    assert_app_err("{'format':1,'link_name':'a','display_name':'','forms':[]}",
                   "app: 'display_name' must be 1 to 255 characters of text");
    assert_app_err("{'format':1,'link_name':'a','display_name':'a\\tb','forms':[]}",
                   "app: 'display_name' must be 1 to 255 characters of text");
    assert_app_err("{'format':1,'link_name':'a','time_zone':5,'forms':[]}",
                   "app: 'time_zone' must be a string");
    assert_app_err(
        "{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':["
        "{'link_name':'N','type':'number','default':[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}]}]}",
        "app: nested deeper than 16 levels");
}

static void test_app_parse_form_errors(void **state)
{
    (void)state;
    assert_app_err("{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':[],'x':1}]}",
                   "forms[0]: unknown key 'x'");
    assert_app_err("{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':[]}]}",
                   "forms[0]: 'fields' must be a list of 1 to 500 fields");
    assert_app_err("{'format':1,'link_name':'a','forms':[{'link_name':'F'}]}",
                   "forms[0]: missing 'fields'");
    assert_app_err("{'format':1,'link_name':'a','forms':[5]}", "forms[0]: expected an object");
    assert_app_err(app_with("{'link_name':'A','type':'number'}", ",'forms2':1"),
                   "app: unknown key 'forms2'");
    assert_app_err("{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':[{'link_name':"
                   "'A','type':'number'}]},{'link_name':'f','fields':[{'link_name':'A','type':"
                   "'number'}]}]}",
                   "forms[1]: duplicate form link name 'f'");
}

/* 250 address fields need 2000 columns: more than a SQLite table holds. */
static void test_app_parse_too_many_columns(void **state)
{
    (void)state;
    static char json[40000];
    size_t n = 0;
    n += (size_t)snprintf(json + n, sizeof(json) - n,
                          "{'format':1,'link_name':'a','forms':[{'link_name':'F','fields':[");
    for (int i = 0; i < 250; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s{'link_name':'A%d','type':'address'}",
                              i ? "," : "", i);
    (void)snprintf(json + n, sizeof(json) - n, "]}]}");
    assert_app_err(json, "forms[0]: the fields need 2000 columns; a form holds at most 1990 "
                         "(name, url and address fields use several)");
}

static void test_app_parse_field_errors(void **state)
{
    (void)state;
    assert_app_err(
        app_with("{'link_name':'A','type':'number'},{'link_name':'B','type':'colour'}", ""),
        "forms[0].fields[1].type: unknown type 'colour'");
    assert_app_err(app_with("{'link_name':'A','type':'number','colour':1}", ""),
                   "forms[0].fields[0]: unknown key 'colour'");
    assert_app_err(app_with("{'link_name':'A'}", ""), "forms[0].fields[0]: missing 'type'");
    assert_app_err(app_with("{'link_name':'A','type':5}", ""),
                   "forms[0].fields[0].type: must be a string");
    assert_app_err(app_with("{'type':'number'}", ""), "forms[0].fields[0]: missing 'link_name'");
    assert_app_err(app_with("{'link_name':'A-b','type':'number'}", ""),
                   "forms[0].fields[0]: 'link_name' must be a link name ([A-Za-z][A-Za-z0-9_]*, at "
                   "most 64 bytes)");
    assert_app_err(app_with("{'link_name':"
                            "'A2345678901234567890123456789012345678901234567890123456789012345',"
                            "'type':'number'}",
                            ""),
                   "forms[0].fields[0]: 'link_name' must be a link name ([A-Za-z][A-Za-z0-9_]*, at "
                   "most 64 bytes)");
    assert_app_err(app_with("{'link_name':'id','type':'number'}", ""),
                   "forms[0].fields[0]: link name 'id' is reserved for a system field");
    assert_app_err(app_with("{'link_name':'Row_Version','type':'number'}", ""),
                   "forms[0].fields[0]: link name 'Row_Version' is reserved for a system field");
    assert_app_err(
        app_with("{'link_name':'A','type':'number'},{'link_name':'a','type':'number'}", ""),
        "forms[0].fields[1]: duplicate field link name 'a'");
    assert_app_err(app_with("{'link_name':'N','type':'name'},{'link_name':'N__first_name','type':"
                            "'number'}",
                            ""),
                   "forms[0]: fields 'N' and 'N__first_name' need the same column name "
                   "'c_N__first_name'");
    assert_app_err(app_with("{'link_name':'A','type':'number','required':'yes'}", ""),
                   "forms[0].fields[0]: 'required' must be true or false");
}

static void test_app_parse_field_property_rules(void **state)
{
    (void)state;
    assert_app_err(app_with("{'link_name':'A','type':'dropdown'}", ""),
                   "forms[0].fields[0]: dropdown fields need 'choices'");
    assert_app_err(app_with("{'link_name':'A','type':'single_line','choices':['x']}", ""),
                   "forms[0].fields[0]: 'choices' is not allowed for single_line fields");
    assert_app_err(app_with("{'link_name':'A','type':'radio','choices':[]}", ""),
                   "forms[0].fields[0]: 'choices' must be a list of 1 to 1000 strings");
    assert_app_err(app_with("{'link_name':'A','type':'radio','choices':['x','y','x']}", ""),
                   "forms[0].fields[0]: choices[2] repeats an earlier choice");
    assert_app_err(app_with("{'link_name':'A','type':'radio','choices':['x','']}", ""),
                   "forms[0].fields[0]: choices[1] must be 1 to 255 characters of text");
    assert_app_err(app_with("{'link_name':'A','type':'number','max_length':5}", ""),
                   "forms[0].fields[0]: 'max_length' is not allowed for number fields");
    assert_app_err(app_with("{'link_name':'A','type':'single_line','max_length':256}", ""),
                   "forms[0].fields[0]: 'max_length' must be an integer from 1 to 255");
    assert_app_err(app_with("{'link_name':'A','type':'multi_line','max_length':0}", ""),
                   "forms[0].fields[0]: 'max_length' must be an integer from 1 to 65535");
    assert_app_err(app_with("{'link_name':'A','type':'decimal','decimal_places':10}", ""),
                   "forms[0].fields[0]: 'decimal_places' must be an integer from 0 to 9");
    assert_app_err(app_with("{'link_name':'A','type':'number','decimal_places':1}", ""),
                   "forms[0].fields[0]: 'decimal_places' is not allowed for number fields");
    assert_app_err(app_with("{'link_name':'A','type':'autonumber','required':true}", ""),
                   "forms[0].fields[0]: 'required' is not allowed for autonumber fields");
    assert_app_err(app_with("{'link_name':'A','type':'number','prefix':'X'}", ""),
                   "forms[0].fields[0]: 'prefix' and 'start' are only for autonumber fields");
    assert_app_err(app_with("{'link_name':'A','type':'autonumber','start':-1}", ""),
                   "forms[0].fields[0]: 'start' must be an integer from 0 to 999999999999999");
    assert_app_err(app_with("{'link_name':'A','type':'autonumber','prefix':''}", ""),
                   "forms[0].fields[0]: 'prefix' must be 1 to 32 characters of text");
    assert_app_err(
        app_with("{'link_name':'A','type':'multi_select','choices':['x'],'unique':true}", ""),
        "forms[0].fields[0]: 'unique' is not allowed for multi_select fields");
    assert_app_err(app_with("{'link_name':'A','type':'lookup','unique':true,'lookup':{'form':'G',"
                            "'display_field':'T','multi':true}}",
                            ""),
                   "forms[0].fields[0]: 'unique' is not allowed for multi lookup fields");
    assert_app_err(
        app_with("{'link_name':'A','type':'dropdown','choices':['x'],'default':'y'}", ""),
        "forms[0].fields[0]: 'default' is not a valid value (field 'A': not one of its "
        "choices)");
    assert_app_err(app_with("{'link_name':'A','type':'date','default':'31-Feb-2024'}", ""),
                   "forms[0].fields[0]: 'default' is not a valid value (field 'A': not a valid "
                   "date)");
    assert_app_err(app_with("{'link_name':'A','type':'autonumber','default':1}", ""),
                   "forms[0].fields[0]: 'default' is not allowed for autonumber fields");
    assert_app_ok(app_with("{'link_name':'A','type':'number','default':null}", ""));
}

static void test_app_parse_lookup_errors(void **state)
{
    (void)state;
    assert_app_err(app_with("{'link_name':'A','type':'lookup'}", ""),
                   "forms[0].fields[0]: lookup fields need 'lookup'");
    assert_app_err(app_with("{'link_name':'A','type':'number','lookup':{}}", ""),
                   "forms[0].fields[0]: 'lookup' is only for lookup fields, not number");
    assert_app_err(app_with("{'link_name':'A','type':'lookup','lookup':{'form':'G'}}", ""),
                   "forms[0].fields[0].lookup: missing 'display_field'");
    assert_app_err(app_with("{'link_name':'A','type':'lookup','lookup':{'form':'G','display_field':"
                            "'T','x':1}}",
                            ""),
                   "forms[0].fields[0].lookup: unknown key 'x'");
    assert_app_err(app_with("{'link_name':'A','type':'lookup','lookup':{'form':'H','display_field':"
                            "'T'}}",
                            ""),
                   "forms[0].fields[0].lookup: no form 'H' in this app");
    assert_app_err(app_with("{'link_name':'A','type':'lookup','lookup':{'form':'G','display_field':"
                            "'U'}}",
                            ""),
                   "forms[0].fields[0].lookup: form 'G' has no field 'U'");
    assert_app_err(app_with("{'link_name':'A','type':'lookup','lookup':{'form':'G','display_field':"
                            "'M'}}",
                            ""),
                   "forms[0].fields[0].lookup: field 'M' of type multi_select cannot be a display "
                   "field");
    assert_app_err(app_with("{'link_name':'A','type':'lookup','lookup':{'form':'G','display_field':"
                            "'T','multi':1}}",
                            ""),
                   "forms[0].fields[0].lookup: 'multi' must be true or false");
    /* a form may look itself up */
    assert_app_ok(app_with("{'link_name':'A','type':'number'},{'link_name':'Boss','type':'lookup',"
                           "'lookup':{'form':'F','display_field':'A'}}",
                           ""));
}

static void test_app_parse_report_errors(void **state)
{
    static const char f[] =
        "{'link_name':'A','type':'number'},{'link_name':'L','type':'multi_select',"
        "'choices':['x']}";
    char extra[512];
    (void)state;
#define REPORT(r) (snprintf(extra, sizeof(extra), ",'reports':[%s]", r), app_with(f, extra))
    assert_app_err(REPORT("{'link_name':'R','form':'H'}"), "reports[0]: no form 'H' in this app");
    assert_app_err(REPORT("{'link_name':'R'}"), "reports[0]: missing 'form'");
    assert_app_err(REPORT("{'link_name':'R','form':'F','x':1}"), "reports[0]: unknown key 'x'");
    assert_app_err(REPORT("{'link_name':'R','form':'F','type':'map'}"),
                   "reports[0]: 'type' must be \"list\" or \"spreadsheet\"");
    assert_app_err(REPORT("{'link_name':'R','form':'F','quick_view':['A','Nope']}"),
                   "reports[0]: quick_view[1]: form 'F' has no field 'Nope'");
    assert_app_err(REPORT("{'link_name':'R','form':'F','quick_view':['A','A']}"),
                   "reports[0]: quick_view[1]: field 'A' appears twice");
    assert_app_err(REPORT("{'link_name':'R','form':'F','detail_view':[]}"),
                   "reports[0]: 'detail_view' must be a non-empty list of field link names");
    assert_app_err(REPORT("{'link_name':'R','form':'F','criteria':'Nope == 1'}"),
                   "reports[0].criteria: at 0: form 'F' has no field 'Nope'");
    assert_app_err(REPORT("{'link_name':'R','form':'F','criteria':'A =='}"),
                   "reports[0].criteria: at 4: expected a value after '=='");
    assert_app_err(REPORT("{'link_name':'R','form':'F','criteria':''}"),
                   "reports[0].criteria: must be a non-empty string");
    assert_app_err(REPORT("{'link_name':'R','form':'F','sort':{'field':'Nope'}}"),
                   "reports[0].sort: form 'F' has no field 'Nope'");
    assert_app_err(REPORT("{'link_name':'R','form':'F','sort':{'field':'L'}}"),
                   "reports[0].sort: cannot sort by field 'L' of type multi_select");
    assert_app_err(REPORT("{'link_name':'R','form':'F','sort':{'field':'A','order':'up'}}"),
                   "reports[0].sort: 'order' must be \"asc\" or \"desc\"");
    assert_app_err(REPORT("{'link_name':'R','form':'F','sort':{'field':'A','by':1}}"),
                   "reports[0].sort: unknown key 'by'");
    assert_app_err(REPORT("{'link_name':'R','form':'F'},{'link_name':'r','form':'G'}"),
                   "reports[1]: duplicate report link name 'r'");
    assert_app_ok(REPORT("{'link_name':'R','form':'F','quick_view':['ID','A','Added_Time'],"
                         "'sort':{'field':'Modified_Time','order':'desc'},"
                         "'criteria':'ID != null && L.contains(\\\"x\\\")'}"));
#undef REPORT
}

/*
 * Every allocation failure in validation (ours and jansson's deep copies)
 * ends in FV_E_NOMEM and nothing leaks; then the same for serialising.
 */
static void test_app_from_json_nomem(void **state)
{
    char *j = fixture_json(fixture_app);
    json_t *root = json_loads(j, 0, NULL);
    (void)state;
    free(j);
    assert_non_null(root);
    for (long n = 1;; n++) {
        struct fv_app *app = NULL;
        struct fv_error e;
        fv_error_init(&e);
        fv_mem_fail_at(n, false);
        int rc = fv_model_app_from_json(root, &app, &e);
        fv_mem_fail_at(0, false);
        if (rc == FV_OK) {
            for (long k = 1;; k++) {
                fv_mem_fail_at(k, false);
                json_t *out = fv_model_app_to_json(app);
                fv_mem_fail_at(0, false);
                if (out != NULL) {
                    json_decref(out);
                    break;
                }
                assert_true(k < 100000);
            }
            fv_model_app_free(app);
            break;
        }
        if (rc != FV_E_NOMEM)
            fail_msg("allocation %ld: rc %d (%s)", n, rc, e.msg);
        assert_null(app);
        assert_true(n < 100000);
    }
    json_decref(root);
}

/*
 * The same through fv_model_app_parse. jansson 2.14 itself crashes when an
 * allocation fails inside json_loadb's lexer (a library bug, reproduced
 * outside formvault), so the loop first counts the allocations json_loadb
 * makes for this text and starts failing after them: every failure point of
 * our own code (and of jansson's copies made for us) is covered.
 */
static void test_app_parse_nomem(void **state)
{
    char *j = fixture_json(fixture_app);
    (void)state;
    fv_mem_fail_at(0, false);
    json_t *probe = json_loadb(j, strlen(j), JSON_REJECT_DUPLICATES, NULL);
    long lexer = fv_mem_count();
    assert_non_null(probe);
    json_decref(probe);
    for (long n = lexer + 1;; n++) {
        struct fv_app *app = NULL;
        struct fv_error e;
        fv_error_init(&e);
        fv_mem_fail_at(n, false);
        int rc = fv_model_app_parse(j, strlen(j), &app, &e);
        fv_mem_fail_at(0, false);
        if (rc == FV_OK) {
            fv_model_app_free(app);
            break;
        }
        if (rc != FV_E_NOMEM) {
            free(j);
            fail_msg("allocation %ld: rc %d (%s)", n, rc, e.msg);
        }
        assert_null(app);
        assert_true(n < 100000);
    }
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_app_parse_fixture),
        cmocka_unit_test(test_app_lookups),
        cmocka_unit_test(test_app_to_json_round_trip),
        cmocka_unit_test(test_app_parse_minimal_defaults),
        cmocka_unit_test(test_app_parse_json_errors),
        cmocka_unit_test(test_app_parse_top_level_errors),
        cmocka_unit_test(test_app_parse_form_errors),
        cmocka_unit_test(test_app_parse_field_errors),
        cmocka_unit_test(test_app_parse_too_many_columns),
        cmocka_unit_test(test_app_parse_field_property_rules),
        cmocka_unit_test(test_app_parse_lookup_errors),
        cmocka_unit_test(test_app_parse_report_errors),
        cmocka_unit_test(test_app_from_json_nomem),
        cmocka_unit_test(test_app_parse_nomem),
    };
    /* route jansson through fv_malloc so the failure hook reaches it too */
    json_set_alloc_funcs(fv_malloc, fv_free);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
